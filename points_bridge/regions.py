"""Where a check or a join came from: one region code, and the source that told it.

Counterfeits by region, regional alerts and region segments are only as good
as the region a check records. Most checks come by SMS, keypad or the QR page
and carry a phone but no region, so the best source there is the phone's home
region: phonenumbers' geocoder knows the province and city of a Chinese mobile
number's first seven digits (``+86 139 1234 5678`` -> ``江苏省常州市``).

One name per concept: a region is an ISO 3166-2 code — ``CN-JS`` for Jiangsu —
the same form an API caller declares (``"region": "CN-SH"``) and the scan
record can hold (ASCII, ``scanrecord.MAX_REGION``). Reports print the name
beside the code (``region_name``: ``CN-JS`` -> ``江苏``). A number of another
country is its ISO 3166-1 country code (``US``, ``HK``).

The sources, best first (``resolve``):

* ``declared`` — the region an *authenticated* API caller declared (a shop's
  till or the brand's app knows where the check happened). The public verify
  route has no authentication, so a declared region counts only when the
  request carries a valid admin token of the tenant; anyone else could steer
  the regional counterfeit alerts with a field.
* ``member`` — the region the member chose (the ``region`` attribute).
* ``phone`` — the phone's home region (the geocoder).
* ``none`` — nothing known: counted under ``-``.

Pure and cheap: the geocoder is pure Python (~20 us a number), so the answer
is cached per number prefix (the number less its last four digits; Chinese
mobile prefixes are seven digits of eleven), which makes a check's lookup a
dict hit.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import phonenumbers

DECLARED, MEMBER, PHONE, NONE = "declared", "member", "phone", "none"
SOURCES = (DECLARED, MEMBER, PHONE, NONE)

# ISO 3166-2:CN codes of the province-level divisions, by the short Chinese name the
# geocoder's descriptions start with ("江苏省常州市", "北京市", "广西桂林市").
CN_PROVINCES: dict[str, str] = {
    "北京": "CN-BJ", "天津": "CN-TJ", "河北": "CN-HE", "山西": "CN-SX", "内蒙古": "CN-NM",
    "辽宁": "CN-LN", "吉林": "CN-JL", "黑龙江": "CN-HL", "上海": "CN-SH", "江苏": "CN-JS",
    "浙江": "CN-ZJ", "安徽": "CN-AH", "福建": "CN-FJ", "江西": "CN-JX", "山东": "CN-SD",
    "河南": "CN-HA", "湖北": "CN-HB", "湖南": "CN-HN", "广东": "CN-GD", "广西": "CN-GX",
    "海南": "CN-HI", "重庆": "CN-CQ", "四川": "CN-SC", "贵州": "CN-GZ", "云南": "CN-YN",
    "西藏": "CN-XZ", "陕西": "CN-SN", "甘肃": "CN-GS", "青海": "CN-QH", "宁夏": "CN-NX",
    "新疆": "CN-XJ", "台湾": "CN-TW", "香港": "CN-HK", "澳门": "CN-MO",
}
NAMES: dict[str, str] = {code: name for name, code in CN_PROVINCES.items()}
_PREFIX_DIGITS = 4


def province_of(description: str) -> str | None:
    """The ISO code of a geocoder description's province (``江苏省常州市`` -> ``CN-JS``)."""
    for name, code in CN_PROVINCES.items():
        if description.startswith(name):
            return code
    return None


def region_of_phone(e164: str) -> str | None:
    """The home region of a normalised phone (``points_bridge.phones``), or None.

    Chinese numbers give their province's ISO 3166-2 code (``CN`` when the
    geocoder knows no province), others their country's ISO 3166-1 code; a
    number of no country gives None.
    """
    if not e164 or not e164.startswith("+"):
        return None
    return _region_of_prefix(e164[:-_PREFIX_DIGITS], e164)


def _lookup(e164: str) -> str | None:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    country = phonenumbers.region_code_for_number(number)
    if country != "CN":
        return country if country and country != "ZZ" else None
    # A number the geocoder places only in "中国" is still Chinese: the country code.
    return province_of(geocoder().description_for_number(number, "zh")) or "CN"


@functools.cache
def geocoder() -> ModuleType:
    """phonenumbers' geocoder, loaded on first use: its data takes ~1.5 s to import.

    Every CLI command imports this module, and most never place a phone; the
    API's workers load it before serving (``verify_api/asgi.py``), so no
    request pays for it.
    """
    return importlib.import_module("phonenumbers.geocoder")


_PREFIX_CACHE: dict[str, str | None] = {}
_PREFIX_CACHE_LIMIT = 65536


def _region_of_prefix(prefix: str, e164: str) -> str | None:
    """The region of every number sharing ``prefix`` (the first number met is looked up)."""
    try:
        return _PREFIX_CACHE[prefix]
    except KeyError:
        pass
    region = _lookup(e164)
    if len(_PREFIX_CACHE) >= _PREFIX_CACHE_LIMIT:
        _PREFIX_CACHE.clear()
    _PREFIX_CACHE[prefix] = region
    return region


def region_name(region: str) -> str:
    """The name a report prints beside a code (``CN-JS`` -> ``江苏``); others as they are."""
    return NAMES.get(region, region)


def resolve(
    declared: str | None,
    *,
    trusted: bool,
    member_region: str | None = None,
    phone: str | None = None,
) -> tuple[str | None, str]:
    """The region of a check or join and its source, best source first (see the module)."""
    if declared and trusted:
        return declared, DECLARED
    if member_region:
        return member_region, MEMBER
    if phone:
        region = region_of_phone(phone)
        if region:
            return region, PHONE
    return None, NONE
