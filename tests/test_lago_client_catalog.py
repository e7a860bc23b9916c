"""Every catalog, customer and subscription endpoint through the official lago-python-client.

The client is used unmodified against ``tally api`` under gunicorn; each call must come
back as the client's typed model, or as LagoApiError where Lago itself would refuse.
"""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import InvoiceFee, InvoiceFeesList, OneOffInvoice
from lago_python_client.models.add_on import AddOn
from lago_python_client.models.billable_metric import (
    BillableMetric,
    BillableMetricEvaluateExpression,
    BillableMetricEvaluateExpressionEvent,
    BillableMetricFilter,
    BillableMetricFilters,
)
from lago_python_client.models.charge import (
    Charge,
    ChargeFilter,
    ChargeFilters,
    Charges,
)
from lago_python_client.models.coupon import Coupon, LimitationConfiguration
from lago_python_client.models.customer import Customer, CustomerBillingConfiguration
from lago_python_client.models.plan import Plan
from lago_python_client.models.subscription import Subscription
from lago_python_client.models.tax import Tax

from domain.api_key import IssuedKey

pytestmark = pytest.mark.slow

AGGREGATIONS = {
    "count_agg": {},
    "sum_agg": {"field_name": "bytes", "recurring": True},
    "max_agg": {"field_name": "cpus"},
    "unique_count_agg": {"field_name": "user"},
    "weighted_sum_agg": {"field_name": "gb", "weighted_interval": "seconds"},
    "latest_agg": {"field_name": "level"},
}


@pytest.fixture
def lago(shared_server: str, tenant: IssuedKey) -> Client:
    return Client(api_key=tenant.secret, api_url=shared_server)


def test_billable_metrics_through_the_client(lago: Client) -> None:
    """create, find, update, find_all, destroy for every aggregation type."""
    for aggregation, extra in AGGREGATIONS.items():
        created = lago.billable_metrics.create(BillableMetric(
            name=aggregation, code=aggregation, aggregation_type=aggregation,
            filters=BillableMetricFilters(__root__=[BillableMetricFilter(key="region", values=["eu", "us"])]), **extra))
        assert created is not None and created.aggregation_type == aggregation and created.lago_id
    found = lago.billable_metrics.find("sum_agg")
    updated = lago.billable_metrics.update(BillableMetric(name="Bytes stored"), "sum_agg")
    listed = lago.billable_metrics.find_all({"per_page": 4})
    deleted = lago.billable_metrics.destroy("latest_agg")

    assert found.field_name == "bytes" and found.recurring is True
    assert updated.name == "Bytes stored" and updated.lago_id == found.lago_id
    assert len(listed["billable_metrics"]) == 4 and listed["meta"]["total_count"] == 6
    assert deleted.code == "latest_agg"
    with pytest.raises(LagoApiError) as missing:
        lago.billable_metrics.find("latest_agg")
    assert missing.value.status_code == 404 and missing.value.response["code"] == "billable_metric_not_found"


def test_evaluate_expression_through_the_client(lago: Client) -> None:
    """The client sends no body for evaluate_expression (a client bug), so it gets Lago's 422."""
    with pytest.raises(LagoApiError) as refused:
        lago.billable_metrics.evaluate_expression(BillableMetricEvaluateExpression(
            expression="round(event.properties.a * 2)",
            event=BillableMetricEvaluateExpressionEvent(code="m", properties={"a": 1})))

    assert refused.value.status_code == 422
    assert refused.value.response["error_details"] == {"expression": ["value_is_mandatory"]}


def test_taxes_add_ons_and_coupons_through_the_client(lago: Client) -> None:
    """create, find, update, find_all, destroy for the three simple catalogs."""
    tax = lago.taxes.create(Tax(name="VAT", code="vat", rate=20.0, applied_to_organization=False))
    add_on = lago.add_ons.create(AddOn(name="Setup", code="setup", amount_cents=5000, amount_currency="EUR", tax_codes=["vat"]))
    coupon = lago.coupons.create(Coupon(name="Ten", code="ten", coupon_type="percentage", percentage_rate=10.0,
                                        frequency="once", expiration="no_expiration", reusable=True,
                                        applies_to=LimitationConfiguration(billable_metric_codes=[])))

    assert tax is not None and tax.rate == 20.0
    assert add_on is not None and add_on.taxes is not None and add_on.taxes.__root__[0].code == "vat"
    assert coupon is not None and coupon.percentage_rate == 10.0
    assert lago.taxes.update(Tax(rate=19.6), "vat").rate == 19.6
    assert lago.add_ons.update(AddOn(amount_cents=6000), "setup").amount_cents == 6000
    assert lago.coupons.update(Coupon(name="Ten off"), "ten").name == "Ten off"
    assert lago.taxes.find("vat").code == "vat" and lago.add_ons.find("setup").code == "setup"
    assert lago.coupons.find("ten").coupon_type == "percentage"
    assert [t.code for t in lago.taxes.find_all()["taxes"]] == ["vat"]
    assert [a.code for a in lago.add_ons.find_all()["add_ons"]] == ["setup"]
    assert [c.code for c in lago.coupons.find_all()["coupons"]] == ["ten"]
    assert lago.coupons.destroy("ten").terminated_at is not None
    assert lago.add_ons.destroy("setup").code == "setup"
    assert lago.taxes.destroy("vat").code == "vat"


def test_plans_and_their_charges_through_the_client(lago: Client) -> None:
    """Plans with every charge model, then the charge and charge-filter sub-resources."""
    metric = lago.billable_metrics.create(BillableMetric(
        name="Bytes", code="bytes", aggregation_type="sum_agg", field_name="bytes",
        filters=BillableMetricFilters(__root__=[BillableMetricFilter(key="region", values=["eu", "us"])])))
    assert metric is not None
    charges = [
        Charge(billable_metric_id=metric.lago_id, code="std", charge_model="standard", properties={"amount": "0.01"},
               filters=ChargeFilters(__root__=[ChargeFilter(values={"region": ["eu"]}, properties={"amount": "0.02"})])),
        Charge(billable_metric_id=metric.lago_id, code="pkg", charge_model="package",
               properties={"amount": "5", "package_size": 100, "free_units": 0}),
        Charge(billable_metric_id=metric.lago_id, code="grad", charge_model="graduated", properties={"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"}]}),
        Charge(billable_metric_id=metric.lago_id, code="vol", charge_model="volume", properties={"volume_ranges": [
            {"from_value": 0, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]}),
        Charge(billable_metric_id=metric.lago_id, code="pct", charge_model="percentage", properties={"rate": "1.5"}),
        Charge(billable_metric_id=metric.lago_id, code="gpct", charge_model="graduated_percentage",
               properties={"graduated_percentage_ranges": [{"from_value": 0, "to_value": None, "rate": "1", "flat_amount": "0"}]}),
        Charge(billable_metric_id=metric.lago_id, code="dyn", charge_model="dynamic", properties={}),
    ]

    created = lago.plans.create(Plan(name="Pro", code="pro", interval="monthly", amount_cents=3000, amount_currency="USD",
                                     pay_in_advance=True, trial_period=7.0, charges=Charges(__root__=charges)))
    found = lago.plans.find("pro")
    updated = lago.plans.update(Plan(amount_cents=3500), "pro")
    listed = lago.plans.find_all()

    assert created is not None and created.charges is not None
    assert [c.charge_model for c in created.charges.__root__] == [c.charge_model for c in charges]
    assert found.code == "pro" and updated.amount_cents == 3500 and [p.code for p in listed["plans"]] == ["pro"]
    assert lago.plan_charges.find("pro", "pkg").properties == {"amount": "5", "package_size": 100, "free_units": 0}
    added = lago.plan_charges.create("pro", Charge(billable_metric_id=metric.lago_id, code="extra",
                                                   charge_model="standard", properties={"amount": "2"}))
    changed = lago.plan_charges.update("pro", "extra", Charge(invoice_display_name="Extra"))
    assert added.code == "extra" and changed.invoice_display_name == "Extra"
    assert lago.plan_charges.destroy("pro", "extra").code == "extra"
    with pytest.raises(LagoApiError) as anonymous:
        lago.plan_charges.find_all("pro")  # the client sends no key here; Lago answers 401 too
    assert anonymous.value.status_code == 401

    added_filter = lago.plans.create_charge_filter("pro", "std", ChargeFilter(values={"region": ["us"]}, properties={"amount": "0.03"}))
    assert added_filter.values == {"region": ["us"]}
    assert lago.plans.find_charge_filter("pro", "std", added_filter.lago_id).properties == {"amount": "0.03"}
    assert lago.plans.update_charge_filter("pro", "std", added_filter.lago_id,
                                           ChargeFilter(properties={"amount": "0.04"})).properties == {"amount": "0.04"}
    assert len(lago.plans.find_all_charge_filters("pro", "std")["filters"]) == 2
    assert lago.plans.destroy_charge_filter("pro", "std", added_filter.lago_id).lago_id == added_filter.lago_id
    assert lago.plans.destroy("pro").code == "pro"


def test_customers_and_subscriptions_through_the_client(lago: Client) -> None:
    """Customers upsert, find, list, delete; subscriptions create, find, update, list, terminate."""
    lago.plans.create(Plan(name="Basic", code="basic", interval="monthly", amount_cents=1000, amount_currency="USD",
                           pay_in_advance=False))
    customer = lago.customers.create(Customer(external_id="cus_1", name="Ada", currency="USD", timezone="Europe/Paris",
                                              billing_configuration=CustomerBillingConfiguration(document_locale="fr")))
    again = lago.customers.create(Customer(external_id="cus_1", email="ada@example.com"))

    assert customer is not None and again is not None and again.lago_id == customer.lago_id
    assert again.email == "ada@example.com" and again.applicable_timezone == "Europe/Paris"
    assert lago.customers.find("cus_1").name == "Ada"
    assert [c.external_id for c in lago.customers.find_all()["customers"]] == ["cus_1"]

    subscription = lago.subscriptions.create(Subscription(external_customer_id="cus_1", plan_code="basic",
                                                          external_id="sub_1", name="Main"))
    assert subscription is not None and subscription.status == "active" and subscription.plan_code == "basic"
    assert subscription.current_billing_period_started_at is not None
    assert lago.subscriptions.find("sub_1").lago_id == subscription.lago_id
    assert lago.subscriptions.update(Subscription(name="Main account"), "sub_1").name == "Main account"
    assert [s.external_id for s in lago.subscriptions.find_all({"external_customer_id": "cus_1"})["subscriptions"]] == ["sub_1"]
    with pytest.raises(LagoApiError) as anonymous:
        lago.customer_subscriptions.find_all("cus_1")  # no key sent by the client, as with Lago: 401
    assert anonymous.value.status_code == 401
    terminated = lago.subscriptions.destroy("sub_1")
    assert terminated.status == "terminated" and terminated.terminated_at is not None
    assert lago.customers.destroy("cus_1").external_id == "cus_1"
    with pytest.raises(LagoApiError) as gone:
        lago.customers.find("cus_1")
    assert gone.value.status_code == 404 and gone.value.response["code"] == "customer_not_found"


def test_one_off_invoices_through_the_client(lago: Client) -> None:
    lago.add_ons.create(AddOn(name="Setup", code="setup", amount_cents=10000, amount_currency="USD"))
    lago.customers.create(Customer(external_id="cus-invoice", name="Invoice Customer"))

    created = lago.invoices.create(OneOffInvoice(external_customer_id="cus-invoice", currency="USD", fees=InvoiceFeesList(
        __root__=[InvoiceFee(add_on_code="setup", units=1.5, unit_amount_cents=2000)])))
    found = lago.invoices.find(created.lago_id)
    listed = lago.invoices.find_all({"external_customer_id": "cus-invoice"})
    downloaded = lago.invoices.download(created.lago_id)

    assert (created.invoice_type, created.status, created.total_amount_cents) == ("one_off", "finalized", 3000)
    assert found.number == created.number and [i.lago_id for i in listed["invoices"]] == [created.lago_id]
    assert downloaded is not None and downloaded.file_url.endswith(f"/invoices/{created.lago_id}/file.pdf")
    with pytest.raises(LagoApiError):
        lago.invoices.find("00000000-0000-0000-0000-000000000000")
