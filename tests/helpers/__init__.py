"""What several test modules share: local servers, worlds, checkers, the CLI runner.

Test modules import from here (``from helpers.httpkit import serve_posts``),
never from one another; fixtures live in ``conftest.py`` or in the plugins it
loads (``helpers.browser``, ``helpers.cluster``, ``helpers.keyguard``).
"""
