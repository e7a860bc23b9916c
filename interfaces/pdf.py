"""An invoice as a PDF, drawn in process with fpdf2 and a bundled DejaVu Sans that prints Latin, Greek and Cyrillic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, XPos, YPos

from domain.currency import minor_unit_exponent

_FONTS = Path(__file__).with_name("fonts")
_FAMILY = "DejaVuSans"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_MARGIN = 18.0
_COLUMNS = (78.0, 26.0, 35.0, 35.0)  # description, units, unit price, amount: the 174 mm between A4 margins
_INK, _MUTED, _RULE, _SHADE, _DRAFT = (33, 37, 41), (108, 117, 125), (206, 212, 218), (241, 243, 245), (200, 35, 51)
_WATERMARK = (246, 222, 225)
_LINE = 4.6  # mm per line of 9 pt text
_PAD = 2.2  # mm above and below a fee row's text


@dataclass(frozen=True)
class Party:
    """The organization (seller) or the customer (buyer) as printed."""

    name: str
    legal_name: str | None = None
    address_lines: tuple[str, ...] = ()
    email: str | None = None
    tax_identification_number: str | None = None


@dataclass(frozen=True)
class PdfLine:
    """One fee, with an optional breakdown of `(label, units, amount_cents)` per tier."""

    description: str
    units: Decimal
    unit_amount_cents: Decimal
    amount_cents: int
    period: str | None = None
    tiers: tuple[tuple[str, Decimal, int], ...] = ()


@dataclass(frozen=True)
class PdfTax:
    """One tax applied to the invoice; `rate` is a percentage."""

    name: str
    rate: Decimal
    amount_cents: int


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice PDF shows, already computed: the renderer adds nothing up."""

    number: str
    issuing_date: date
    payment_due_date: date
    currency: str
    seller: Party
    buyer: Party
    lines: tuple[PdfLine, ...]
    fees_amount_cents: int
    coupons_amount_cents: int
    taxes: tuple[PdfTax, ...]
    taxes_amount_cents: int
    credits_amount_cents: int
    total_amount_cents: int
    status: str = "finalized"
    billing_period: str | None = None
    footer: str | None = None
    prepaid_amount_cents: int = 0
    kind: str = "Invoice"  # or "Credit note": the same layout, its own title
    billed_early_amount_cents: int = 0  # usage invoiced before the period closed (invoice_now)
    references: tuple[tuple[str, str], ...] = ()  # further facts under the heading (a credit note's invoice)


def render_invoice(document: InvoiceDocument) -> bytes:
    """The invoice as PDF bytes; the same document always gives the same bytes."""
    pdf = _InvoicePdf(document)
    pdf.add_page()
    pdf.draw_heading()
    pdf.draw_parties()
    pdf.draw_lines()
    pdf.draw_summary()
    pdf.draw_footer_note()
    return bytes(pdf.output())


def format_money(amount_cents: int, currency: str) -> str:
    """Integer minor units as `-1,234.56 USD`, with as many decimals as the currency has."""
    exponent = minor_unit_exponent(currency)
    major, minor = divmod(abs(amount_cents), 10**exponent)
    sign = "-" if amount_cents < 0 else ""
    decimals = f".{minor:0{exponent}d}" if exponent else ""
    return f"{sign}{major:,}{decimals} {currency}"


def format_unit_price(unit_amount_cents: Decimal, currency: str) -> str:
    """A price per unit in major units: the currency's decimals at least, more when a fraction of a cent is priced."""
    exponent = minor_unit_exponent(currency)
    major = unit_amount_cents.scaleb(-exponent)
    places = max(exponent, -major.normalize().as_tuple().exponent)
    return f"{major:,.{places}f} {currency}"


def format_quantity(value: Decimal) -> str:
    """A quantity with thousands separators and no trailing zeros: `1,234.5`."""
    return f"{value.normalize():,f}"


def format_date(day: date) -> str:
    """`Mar 16, 2024`, the same whatever the process locale."""
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


class _InvoicePdf(FPDF):
    def __init__(self, document: InvoiceDocument) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.document = document
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(True, margin=_MARGIN + 6)
        self.c_margin = 2
        self.add_font(_FAMILY, "", _FONTS / "DejaVuSans.ttf")
        self.add_font(_FAMILY, "B", _FONTS / "DejaVuSans-Bold.ttf")
        self.set_creation_date(datetime.combine(document.issuing_date, time(), tzinfo=UTC))
        self.set_title(f"{document.kind} {document.number}")
        self.set_author(document.seller.name)
        self.set_creator("Tally")
        self.set_text_color(*_INK)
        self._font(9)

    def _font(self, size: float, bold: bool = False, color: tuple[int, int, int] = _INK) -> None:
        self.set_font(_FAMILY, "B" if bold else "", size)
        self.set_text_color(*color)

    @property
    def _is_draft(self) -> bool:
        return self.document.status == "draft"

    def header(self) -> None:
        if self._is_draft:
            x, y = self.x, self.y
            with self.local_context(), self.rotation(35, self.w / 2, self.h / 2):
                self._font(110, bold=True, color=_WATERMARK)
                self.set_xy(0, self.h / 2 - 20)
                self.cell(self.w, 40, "DRAFT", align="C")
            self.set_xy(x, y)
        if self.page_no() > 1:
            self._font(8, color=_MUTED)
            self.set_xy(_MARGIN, _MARGIN - 8)
            self.cell(0, 4, f"{self.document.kind} {self.document.number} (continued)")
            self.set_xy(_MARGIN, _MARGIN)

    def footer(self) -> None:
        self.set_draw_color(*_RULE)
        self.line(_MARGIN, self.h - _MARGIN, self.w - _MARGIN, self.h - _MARGIN)
        self._font(7.5, color=_MUTED)
        self.set_xy(_MARGIN, self.h - _MARGIN + 1.5)
        pages = f"Page {self.page_no()} of {{nb}}"
        pages_width = self.get_string_width(pages.replace("{nb}", "000")) + 2 * self.c_margin
        whose = f"{self.document.seller.name} · {self.document.kind} {self.document.number}"
        self._fitted_cell(self.epw - pages_width, 4, whose, "L")
        self.cell(pages_width, 4, pages, align="R")

    def draw_heading(self) -> None:
        document, top = self.document, self.y
        self._font(24, bold=True)
        self.cell(self.get_string_width(document.kind) + 4, 11, document.kind)
        if self._is_draft:
            self._font(8, bold=True, color=(255, 255, 255))
            self.set_fill_color(*_DRAFT)
            self.set_xy(self.x, top + 3.2)
            self.cell(self.get_string_width("DRAFT") + 4, 5, "DRAFT", fill=True, align="C")
        self.set_xy(_MARGIN + self.epw / 2, top)
        self._font(12, bold=True)
        self.multi_cell(self.epw / 2, 6, document.seller.name, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(self.y, top + 14))
        number_label = f"{document.kind} number"
        facts = [(number_label, document.number), ("Issue date", format_date(document.issuing_date))]
        if document.kind == "Invoice":
            facts.append(("Payment due", format_date(document.payment_due_date)))
        if document.billing_period:
            facts.append(("Billing period", document.billing_period))
        facts.extend(document.references)
        self._font(8.5)
        label_width = max(30, max(self.get_string_width(label) for label, _ in facts) + 4)
        for label, value in facts:
            self._font(8.5, color=_MUTED)
            self.cell(label_width, 5, label)
            self._font(9, bold=label == number_label)
            self.multi_cell(self.epw / 2 - label_width, 5, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(6)

    def draw_parties(self) -> None:
        top, width = self.y, self.epw / 2 - 6
        bottoms = [self._draw_party("From", self.document.seller, _MARGIN, top, width)]
        buyer_title = "Bill to" if self.document.kind == "Invoice" else "Credited to"
        bottoms.append(self._draw_party(buyer_title, self.document.buyer, _MARGIN + self.epw / 2, top, width))
        self.set_xy(_MARGIN, max(bottoms) + 8)

    def _draw_party(self, title: str, party: Party, x: float, top: float, width: float) -> float:
        self.set_xy(x, top)
        self._font(7.5, bold=True, color=_MUTED)
        self.cell(width, 4.5, title.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
        self._font(10, bold=True)
        self.multi_cell(width, 5, party.name, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
        self._font(8.5)
        details = [party.legal_name] if party.legal_name and party.legal_name != party.name else []
        details += [*party.address_lines, party.email]
        if party.tax_identification_number:
            details.append(f"Tax ID: {party.tax_identification_number}")
        for detail in filter(None, details):
            self.multi_cell(width, 4.3, detail, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
        return self.y

    def _draw_table_heading(self) -> None:
        self.set_fill_color(*_SHADE)
        self._font(8, bold=True, color=_MUTED)
        for title, width in zip(("Description", "Units", "Unit price", "Amount"), _COLUMNS):
            self.cell(width, 7, title, fill=True, align="L" if title == "Description" else "R")
        self.ln(7)

    def _room_for(self, height: float) -> None:
        """Start a new page, table heading repeated, when `height` more millimetres would cross the bottom margin."""
        if self.y + height > self.page_break_trigger:
            self.add_page()
            with self.local_context():
                self._draw_table_heading()

    def _text_height(self, width: float, text: str, line: float) -> float:
        lines = self.multi_cell(width, line, text, dry_run=True, output=MethodReturnValue.LINES)
        return len(lines) * line

    def draw_lines(self) -> None:
        self._draw_table_heading()
        for line in self.document.lines:
            self._draw_line(line)

    def _draw_line(self, line: PdfLine) -> None:
        currency, (described, *_) = self.document.currency, _COLUMNS
        self._font(9)
        height = self._text_height(described, line.description, _LINE)
        if line.period:
            self._font(7.5)
            height += self._text_height(described, line.period, 4)
        self._room_for(height + 2 * _PAD + (4.5 if line.tiers else 0))
        page, top = self.page, self.y + _PAD
        self._font(9)
        self.set_xy(_MARGIN, top)
        self.multi_cell(described, _LINE, line.description, align="L", new_x=XPos.LMARGIN)
        if line.period:
            self._font(7.5, color=_MUTED)
            self.multi_cell(described, 4, line.period, align="L", new_x=XPos.LMARGIN)
        self._font(9)
        figures = (format_quantity(line.units), format_unit_price(line.unit_amount_cents, currency))
        self._draw_figures(page, top, (*figures, format_money(line.amount_cents, currency)), _LINE)
        self.set_y(self.y + (0 if line.tiers else _PAD))
        for label, units, amount_cents in line.tiers:
            self._draw_tier(label, units, amount_cents)
        if line.tiers:
            self.set_y(self.y + _PAD - 1)
        self.set_draw_color(*_RULE)
        self.line(_MARGIN, self.y, self.w - _MARGIN, self.y)

    def _draw_tier(self, label: str, units: Decimal, amount_cents: int) -> None:
        self._font(7.5, color=_MUTED)
        self._room_for(self._text_height(_COLUMNS[0] - 6, label, 4) + 1)
        page, top = self.page, self.y
        self.set_xy(_MARGIN + 6, top)
        self.multi_cell(_COLUMNS[0] - 6, 4, label, align="L", new_x=XPos.LMARGIN)
        figures = (format_quantity(units), "", format_money(amount_cents, self.document.currency))
        self._draw_figures(page, top, figures, 4)
        self.set_y(self.y + 0.5)

    def _draw_figures(self, page: int, top: float, figures: tuple[str, str, str], height: float) -> None:
        """Right-aligned numbers beside the description, on its first line even if it ran onto another page."""
        end_page, end_y, self.page = self.page, self.y, page
        x = _MARGIN + _COLUMNS[0]
        for text, width in zip(figures, _COLUMNS[1:]):
            self.set_xy(x, top)
            self._fitted_cell(width, height, text)
            x += width
        self.page = end_page
        self.set_y(end_y if end_page != page else max(end_y, top + height))

    def _fitted_cell(self, width: float, height: float, text: str, align: str = "R") -> None:
        """A figure (or a line) shrunk rather than spilling into the cell beside it."""
        size = fitted = self.font_size_pt
        while fitted > 5 and self.get_string_width(text) > width - 4:
            fitted -= 0.5
            self.set_font_size(fitted)
        self.cell(width, height, text, align=align)
        self.set_font_size(size)

    def draw_summary(self) -> None:
        document, currency = self.document, self.document.currency
        rows: list[tuple[str, int]] = [("Subtotal", document.fees_amount_cents)]
        if document.billed_early_amount_cents:
            rows.append(("Already invoiced", -document.billed_early_amount_cents))
        if document.coupons_amount_cents:
            rows.append(("Coupons", -document.coupons_amount_cents))
        rows += [(f"{tax.name} ({format_quantity(tax.rate)}%)", tax.amount_cents) for tax in document.taxes]
        rows.append(("Total taxes", document.taxes_amount_cents))
        if document.credits_amount_cents:
            rows.append(("Credit notes", -document.credits_amount_cents))
        if document.prepaid_amount_cents:
            rows.append(("Prepaid credits", -document.prepaid_amount_cents))
        width = sum(_COLUMNS[1:])
        left = self.w - _MARGIN - width
        self.ln(4)
        if self.y + 6 * len(rows) + 12 > self.page_break_trigger:
            self.add_page()
        for label, amount_cents in rows:
            self.set_x(left)
            self._font(9, color=_MUTED)
            self._summary_row(width, 6, label, format_money(amount_cents, currency))
        self.set_draw_color(*_INK)
        self.line(left, self.y + 1, self.w - _MARGIN, self.y + 1)
        self.set_xy(left, self.y + 2)
        self._font(11, bold=True)
        total_label = "Total due" if document.kind == "Invoice" else "Total credited"
        self._summary_row(width, 8, total_label, format_money(document.total_amount_cents, currency))
        self.ln(4)

    def _summary_row(self, width: float, height: float, label: str, value: str) -> None:
        """A label, wrapped if long, and its amount beside the label's first line, flush with the Amount column."""
        left, top = self.x, self.y
        label_width = min(self.get_string_width(label) + 2 * self.c_margin + 0.1, width * 0.6)
        pad = (height - _LINE) / 2
        self.multi_cell(label_width, _LINE, label, align="L", new_x=XPos.LMARGIN, padding=(pad, 0))
        bottom = self.y
        self.set_xy(left + label_width, top)
        self.set_text_color(*_INK)
        self._fitted_cell(width - label_width, height, value)
        self.set_y(max(bottom, top + height))

    def draw_footer_note(self) -> None:
        if self.document.footer:
            self._font(8, color=_MUTED)
            self.multi_cell(0, 4.2, self.document.footer, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
