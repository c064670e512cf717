"""Consumer channels: SMS keywords, the phone keypad (IVR) and the web page behind the QR code.

Pure modules (``keywords``, ``templates``, ``gateways``, ``signatures``,
``csrf``) hold the rules; ``config``, ``sms``, ``ivr`` and ``web`` put them
to work on the store through ``VerifyEngine``, so every channel speaks the
same result vocabulary and credits points by the same path.
"""
