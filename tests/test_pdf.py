"""Invoice PDFs: what the rendered document says, how money prints per currency, and that it paginates."""

from __future__ import annotations

import re
import zlib
from dataclasses import replace
from datetime import date
from decimal import Decimal

from interfaces.pdf import (
    InvoiceDocument,
    Party,
    PdfLine,
    PdfTax,
    format_money,
    format_quantity,
    format_unit_price,
    render_invoice,
)

D = Decimal
LONG_DESCRIPTION = (
    "Storage in GB-hours, measured hourly across every bucket of the account and summed over the billing period"
)

INVOICE = InvoiceDocument(
    number="ACM-202403-0042",
    issuing_date=date(2024, 4, 1),
    payment_due_date=date(2024, 5, 1),
    currency="USD",
    seller=Party(
        name="Acme Metering",
        legal_name="Acme Metering Inc.",
        address_lines=("1 Market Street", "San Francisco, CA 94105", "United States"),
        email="billing@acme.example",
        tax_identification_number="US-12-3456789",
    ),
    buyer=Party(
        name="Zoë Åström",
        address_lines=("Östra Hamngatan 5", "411 10 Göteborg", "Sweden"),
        email="zoe@astrom.example",
    ),
    lines=(
        PdfLine("Base plan", D(1), D(4900), 4900, period="Mar 1, 2024 – Mar 31, 2024"),
        PdfLine(
            "API calls — region: eu",
            D(12500),
            D("0.8"),
            10000,
            tiers=(("0 – 1,000", D(1000), 0), ("1,001 – 10,000", D(9000), 7200), ("10,001 and above", D(2500), 2800)),
        ),
        PdfLine(LONG_DESCRIPTION, D("1234.5"), D("1.25"), 1543),
        PdfLine("Поддержка (Cyrillic) και ελληνικά", D("3.25"), D(100000), 325000),
    ),
    fees_amount_cents=341443,
    coupons_amount_cents=0,
    taxes=(PdfTax("VAT", D(20), 68289),),
    taxes_amount_cents=68289,
    credits_amount_cents=1500,
    total_amount_cents=408232,
    billing_period="Mar 1, 2024 – Mar 31, 2024",
    footer="Pay by bank transfer, quoting the invoice number.",
)


def _pdf_objects(pdf: bytes) -> dict[int, bytes]:
    return {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)endobj", pdf, re.DOTALL)}


def _stream(body: bytes) -> bytes:
    raw = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.DOTALL)
    assert raw is not None
    return zlib.decompress(raw[1]) if b"/FlateDecode" in body.split(b"stream")[0] else raw[1]


def _text(pdf: bytes) -> str:
    """The text in drawing order, spaces collapsed; fpdf2 writes glyph codes that each font's ToUnicode map decodes."""
    objects = _pdf_objects(pdf)
    to_unicode: dict[bytes, dict[bytes, str]] = {}
    for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", b"".join(objects.values())):
        cmap_ref = re.search(rb"/ToUnicode (\d+) 0 R", objects[int(ref)])
        assert cmap_ref is not None
        pairs = re.findall(rb"<([0-9A-F]{4})> <([0-9A-F]+)>", _stream(objects[int(cmap_ref[1])]))
        to_unicode[name] = {bytes.fromhex(c.decode()): bytes.fromhex(u.decode()).decode("utf-16-be") for c, u in pairs}
    chunks: list[str] = []
    for body in (objects[int(ref)] for ref in re.findall(rb"/Contents (\d+) 0 R", pdf)):
        font: dict[bytes, str] = {}
        for name, literal in re.findall(rb"/(F\d+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\) ?Tj", _stream(body), re.DOTALL):
            if name:
                font = to_unicode[name]
                continue
            codes = re.sub(rb"\\(.)", lambda m: b"\r" if m[1] == b"r" else m[1], literal, flags=re.DOTALL)
            chunks.append("".join(font.get(codes[i : i + 2], "?") for i in range(0, len(codes), 2)))
    return " ".join(" ".join(chunks).split())


def _page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b", pdf))


def test_invoice_pdf_shows_number_parties_fees_and_total() -> None:
    """The PDF names the invoice, both parties (accents intact), every fee and the formatted total due."""
    pdf = render_invoice(INVOICE)

    text = _text(pdf)

    assert pdf.startswith(b"%PDF")
    assert "Invoice" in text and "ACM-202403-0042" in text
    assert "Acme Metering" in text and "Zoë Åström" in text and "411 10 Göteborg" in text
    assert "Apr 1, 2024" in text and "May 1, 2024" in text
    for line in INVOICE.lines:
        assert line.description in text
    assert "Total due 4,082.32 USD" in text


def test_invoice_pdf_prints_units_unit_prices_tiers_and_the_summary() -> None:
    """Fees show units and prices, tiers their breakdown; the summary lists each tax and credits, not zero coupons."""
    text = _text(render_invoice(INVOICE))

    assert "1,234.5" in text and "0.0125 USD" in text and "15.43 USD" in text
    assert "0.008 USD" in text and "10,001 and above 2,500 28.00 USD" in text
    assert "Subtotal 3,414.43 USD" in text
    assert "VAT (20%) 682.89 USD" in text and "Total taxes 682.89 USD" in text
    assert "Credit notes -15.00 USD" in text
    assert "Coupons" not in text
    assert "Mar 1, 2024 – Mar 31, 2024" in text
    assert "quoting the invoice number" in text


def test_yen_invoice_prints_no_decimals() -> None:
    """JPY has no minor unit, so its amounts print as whole yen."""
    document = replace(
        INVOICE,
        currency="JPY",
        lines=(PdfLine("Base plan", D(2), D(4900), 9800),),
        fees_amount_cents=9800,
        taxes=(PdfTax("Consumption tax", D(10), 980),),
        taxes_amount_cents=980,
        credits_amount_cents=0,
        total_amount_cents=10780,
    )

    text = _text(render_invoice(document))

    assert "Base plan 2 4,900 JPY 9,800 JPY" in text
    assert "Total due 10,780 JPY" in text
    assert not re.search(r"\d\.\d+ JPY", text)


def test_two_hundred_fees_paginate_with_a_repeated_table_heading() -> None:
    """A long invoice flows over pages, each page repeating the column headings and counting pages."""
    lines = tuple(PdfLine(f"Usage item {n}", D(n), D(10), 10 * n) for n in range(200))
    document = replace(INVOICE, lines=lines, fees_amount_cents=199000, total_amount_cents=199000)

    pdf = render_invoice(document)

    text = _text(pdf)
    pages = _page_count(pdf)
    assert pages > 1
    assert text.count("Description Units Unit price Amount") == pages
    assert f"Page {pages} of {pages}" in text
    assert "Usage item 0 " in text and "Usage item 199 " in text


def test_names_outside_the_bundled_font_do_not_fail_rendering() -> None:
    """A customer named in a script DejaVu lacks (CJK) still gets a PDF; the missing glyphs print blank."""
    document = replace(INVOICE, buyer=Party(name="株式会社テスト", address_lines=("東京都千代田区1-1",)))

    pdf = render_invoice(document)

    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")


def test_draft_invoice_is_marked_draft() -> None:
    """A draft says so; a finalized invoice does not."""
    draft = _text(render_invoice(replace(INVOICE, status="draft")))

    finalized = _text(render_invoice(INVOICE))

    assert "DRAFT" in draft
    assert "DRAFT" not in finalized


def test_same_document_renders_to_the_same_bytes() -> None:
    """Rendering is deterministic: the creation date comes from the issuing date."""
    first = render_invoice(INVOICE)

    second = render_invoice(INVOICE)

    assert first == second
    assert b"/CreationDate (D:20240401000000Z)" in first


def test_money_prints_with_the_currency_decimals() -> None:
    """Minor units become major units with the currency's exponent, grouped by thousands, never via floats."""
    assert format_money(123456, "USD") == "1,234.56 USD"
    assert format_money(-5, "EUR") == "-0.05 EUR"
    assert format_money(1234, "JPY") == "1,234 JPY"
    assert format_money(12345, "CLF") == "1.2345 CLF"
    assert format_unit_price(D(4900), "EUR") == "49.00 EUR"
    assert format_unit_price(D("0.0125"), "EUR") == "0.000125 EUR"
    assert format_unit_price(D(12), "JPY") == "12 JPY"
    assert format_quantity(D("1234.500")) == "1,234.5"
    assert format_quantity(D("1E+2")) == "100"
