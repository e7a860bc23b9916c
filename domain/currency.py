"""Accepted ISO 4217 currencies and how many decimals their minor unit has."""

from __future__ import annotations

_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)
_FOUR_DECIMALS = frozenset({"CLF"})

ACCEPTED_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BIF BMD BND BOB BRL BSD BWP BYN
    BZD CAD CDF CHF CLF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR ISK JMD JPY KES KGS KHR KMF KRW
    KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRO MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD
    SHP SLL SOS SRD STD SZL THB TJS TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VND VUV WST XAF
    XCD XOF XPF YER ZAR ZMW
    """.split()
)


def is_accepted_currency(code: str) -> bool:
    """Whether Tally (like Lago) bills in this currency."""
    return code in ACCEPTED_CURRENCIES


def minor_unit_exponent(code: str) -> int:
    """Decimal places between a currency's major unit and the ``*_cents`` integer."""
    if code in _ZERO_DECIMALS:
        return 0
    if code in _FOUR_DECIMALS:
        return 4
    return 2
