"""The Organization aggregate and its settings rules, in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import identity
from domain.errors import ValidationFailed
from domain.organization import (
    Organization,
    OrganizationSettings,
    default_document_prefix,
)


def _organization() -> Organization:
    slug = "acme"
    return Organization.register(
        name="Acme",
        slug=slug,
        settings=OrganizationSettings(document_number_prefix=default_document_prefix("Acme", identity.organization_id(slug))),
    )


def test_an_organization_id_derives_from_its_slug() -> None:
    """Two registrations of one slug address the same aggregate, so the store refuses the second."""
    assert _organization().id == _organization().id == identity.organization_id("acme")


def test_changing_settings_records_the_whole_new_settings() -> None:
    """A settings change is one event carrying the complete resulting settings."""
    organization = _organization()

    organization.change_settings(organization.settings.amended({"timezone": "Asia/Tokyo", "country": "JP"}))

    events = organization.collect_events()
    assert [type(e).__name__ for e in events] == ["Created", "SettingsChanged"]
    assert events[-1].settings.timezone == "Asia/Tokyo"
    assert events[-1].settings.address.country == "JP"


def test_unchanged_settings_record_nothing() -> None:
    """A PUT that repeats the current values is not a new fact."""
    organization = _organization()
    organization.collect_events()

    organization.change_settings(organization.settings.amended({"timezone": "UTC"}))

    assert organization.collect_events() == []


def test_invalid_settings_name_every_bad_field_and_record_nothing() -> None:
    """All invalid fields are reported together, in Lago's error codes."""
    organization = _organization()
    organization.collect_events()

    with pytest.raises(ValidationFailed) as refused:
        organization.change_settings(
            organization.settings.amended(
                {
                    "timezone": "Mars/Olympus",
                    "default_currency": "XXX",
                    "net_payment_term": -1,
                    "email": "not-an-email",
                    "country": "ZZ",
                    "email_settings": ["invoice.finalized", "nope"],
                    "billing_configuration": {"invoice_grace_period": 400},
                }
            )
        )

    assert refused.value.details == {
        "default_currency": ["value_is_invalid"],
        "timezone": ["invalid_timezone"],
        "email": ["invalid_email_format"],
        "country": ["country_code_invalid"],
        "net_payment_term": ["value_is_out_of_range"],
        "email_settings": ["value_is_invalid"],
        "invoice_grace_period": ["value_is_out_of_range"],
    }
    assert organization.collect_events() == []


def test_amending_billing_configuration_keeps_the_unsent_keys() -> None:
    """Nested settings merge: sending the footer alone keeps the grace period."""
    settings = OrganizationSettings(document_number_prefix="ACM-0001").amended(
        {"billing_configuration": {"invoice_grace_period": 3}}
    )

    amended = settings.amended({"billing_configuration": {"invoice_footer": "Thanks"}})

    assert amended.billing_configuration.invoice_grace_period == 3
    assert amended.billing_configuration.invoice_footer == "Thanks"


def test_document_number_prefix_is_upper_cased_and_at_most_ten_characters() -> None:
    """Lago stores the prefix upper-cased and refuses more than ten characters."""
    settings = OrganizationSettings(document_number_prefix="ACM-0001")

    assert settings.amended({"document_number_prefix": "inv"}).document_number_prefix == "INV"
    with pytest.raises(ValidationFailed) as refused:
        settings.amended({"document_number_prefix": "x" * 11}).check()
    assert refused.value.details == {"document_number_prefix": ["value_is_too_long"]}


def test_registration_refuses_a_blank_name() -> None:
    """An organization needs a name."""
    with pytest.raises(ValidationFailed) as refused:
        Organization.register(name=" ", slug="blank", settings=OrganizationSettings(document_number_prefix="B-1"))

    assert refused.value.details == {"name": ["value_is_mandatory"]}


@given(st.uuids(), st.uuids(), st.text(min_size=1, max_size=40))
def test_scoped_ids_never_collide_across_organizations(first, second, key) -> None:  # type: ignore[no-untyped-def]
    """The same external id in two organizations names two different aggregates."""
    if first != second:
        assert identity.scoped_id(first, "customer", key) != identity.scoped_id(second, "customer", key)
    assert identity.scoped_id(first, "customer", key) == identity.scoped_id(first, "customer", key)


@given(st.text(max_size=60))
def test_slugs_are_lower_case_ascii_words(name: str) -> None:
    """A derived slug is empty or dash-separated [a-z0-9] words, and slugifying it again changes nothing."""
    slug = identity.slugify(name)

    assert all(part and part.isascii() and part.isalnum() and part == part.lower() for part in slug.split("-")) or slug == ""
    assert identity.slugify(slug) == slug
