"""The Billing application: every catalog, customer and invoice write goes through here.

Each method loads, calls one aggregate command, saves, and translates library errors into
domain errors. Usage events have their own application (docs/adr/0004), so their writes
never queue behind these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain import api_key, identity
from domain.api_key import ApiKey, ApiKeyNotFound, InvalidApiKey, IssuedKey
from domain.add_on import AddOn, AddOnDefinition
from domain.billable_metric import BillableMetric, BillableMetricNotFound, MetricDefinition
from domain.charge import Charge, ChargeFilter
from domain.coupon import Coupon, CouponDefinition
from domain.catalog import CatalogItem
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.handle import Handle
from domain.plan import (
    Plan,
    PlanDefinition,
    PlanNotFound,
    Stamp,
    amend_plan,
    charge_filter,
    with_charge,
    with_filter,
    without_charge,
    without_filter,
)
from domain.tax import Tax, TaxDefinition
from domain.organization import (
    Organization,
    OrganizationAlreadyExists,
    OrganizationNotFound,
    OrganizationSettings,
    default_document_prefix,
)

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound=CatalogItem)


class ConcurrentWrite(Conflict):
    """Another writer changed the same aggregate first; the caller may retry."""

    code = "concurrent_write"


class Billing(Application[UUID]):
    """Organizations and API keys now; catalog, customers, subscriptions and invoices next."""

    name = "Billing"

    # --- organizations -------------------------------------------------------------------

    def create_organization(self, name: str, slug: str | None = None) -> IssuedKey:
        """Open an organization with default settings and issue its first API key."""
        slug = identity.slugify(name) if slug is None else slug
        if not slug:
            raise ValidationFailed({"slug": ["value_is_mandatory"]})
        organization_id = identity.organization_id(slug)
        settings = OrganizationSettings(
            document_number_prefix=default_document_prefix(name, organization_id)
        )
        organization = Organization.register(name=name, slug=slug, settings=settings)
        key, issued = self._issue_key(organization, "default")
        try:
            self.save(organization, key)
        except IntegrityError:
            raise OrganizationAlreadyExists(f"an organization with slug {slug!r} exists") from None
        return issued

    def organization(self, organization_id: UUID) -> Organization:
        return self._load(organization_id, Organization, OrganizationNotFound)

    def find_organization(self, slug: str) -> Organization | None:
        try:
            return self.organization(identity.organization_id(slug))
        except OrganizationNotFound:
            return None

    def update_organization(self, organization_id: UUID, changes: Mapping[str, Any]) -> None:
        """Apply a partial update: a new name and/or settings, each recorded only if it changes."""
        organization = self.organization(organization_id)
        if "name" in changes:
            organization.rename(changes["name"])
        organization.change_settings(organization.settings.amended(changes))
        self._save(organization)

    # --- API keys ------------------------------------------------------------------------

    def issue_api_key(self, organization_id: UUID, name: str = "") -> IssuedKey:
        organization = self.organization(organization_id)
        key, issued = self._issue_key(organization, name)
        self._save(organization, key)
        return issued

    def revoke_api_key(self, key_id: UUID) -> None:
        key = self._load(key_id, ApiKey, ApiKeyNotFound)
        key.revoke()
        self._save(key)

    def api_keys(self, organization_id: UUID) -> list[ApiKey]:
        organization = self.organization(organization_id)
        return [self._load(k, ApiKey, ApiKeyNotFound) for k in organization.api_key_ids]

    def authenticate(self, secret: str) -> UUID:
        """The organization a presented key acts for; InvalidApiKey if unknown or revoked."""
        if not secret.startswith(api_key.SECRET_PREFIX) or len(secret) > 128:
            raise InvalidApiKey("malformed API key")
        try:
            key = self.repository.get(api_key.key_id_for(secret))
        except AggregateNotFoundError:
            raise InvalidApiKey("unknown API key") from None
        return key.authorize()

    # --- billable metrics ----------------------------------------------------------------

    def create_billable_metric(self, organization_id: UUID, changes: Mapping[str, Any]) -> UUID:
        return self._define(BillableMetric, organization_id, MetricDefinition().amended(changes))

    def update_billable_metric(self, organization_id: UUID, code: str, changes: Mapping[str, Any]) -> UUID:
        return self._redefine(BillableMetric, organization_id, code, changes)

    def delete_billable_metric(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(BillableMetric, organization_id, code)

    def billable_metric(self, organization_id: UUID, code: str) -> BillableMetric:
        return self._resolve(organization_id, BillableMetric, code)[1]

    # --- taxes, add-ons, coupons --------------------------------------------------------

    def create_tax(self, organization_id: UUID, changes: Mapping[str, Any]) -> UUID:
        return self._define(Tax, organization_id, TaxDefinition().amended(changes))

    def update_tax(self, organization_id: UUID, code: str, changes: Mapping[str, Any]) -> UUID:
        return self._redefine(Tax, organization_id, code, changes)

    def delete_tax(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(Tax, organization_id, code)

    def create_add_on(self, organization_id: UUID, changes: Mapping[str, Any]) -> UUID:
        definition = AddOnDefinition().amended(changes)
        return self._define(AddOn, organization_id, definition, lambda d: self._require_taxes(organization_id, d.tax_codes))

    def update_add_on(self, organization_id: UUID, code: str, changes: Mapping[str, Any]) -> UUID:
        return self._redefine(AddOn, organization_id, code, changes, lambda d: self._require_taxes(organization_id, d.tax_codes))

    def delete_add_on(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(AddOn, organization_id, code)

    def create_coupon(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        definition = CouponDefinition().amended(changes)
        return self._define(Coupon, organization_id, definition, lambda d: self._check_coupon(organization_id, d, now))

    def update_coupon(self, organization_id: UUID, code: str, changes: Mapping[str, Any], now: datetime) -> UUID:
        return self._redefine(Coupon, organization_id, code, changes, lambda d: self._check_coupon(organization_id, d, now))

    def delete_coupon(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(Coupon, organization_id, code)

    # --- plans and charges -------------------------------------------------------------

    def create_plan(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        metrics = self._charge_metrics(organization_id, changes.get("charges") or ())
        definition = amend_plan(PlanDefinition(), changes, metrics=metrics, stamp=Stamp(uuid4, now))
        return self._define(Plan, organization_id, definition, lambda d: self._check_plan(organization_id, d))

    def update_plan(self, organization_id: UUID, code: str, changes: Mapping[str, Any], now: datetime) -> UUID:
        metrics = self._charge_metrics(organization_id, changes.get("charges") or ())
        return self._redefine(
            Plan, organization_id, code,
            lambda d: amend_plan(d, changes, metrics=metrics, stamp=Stamp(uuid4, now)),
            lambda d: self._check_plan(organization_id, d),
        )

    def delete_plan(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(Plan, organization_id, code)

    def plan(self, organization_id: UUID, code: str) -> Plan:
        return self._resolve(organization_id, Plan, code)[1]

    def add_charge(self, organization_id: UUID, plan_code: str, raw: Mapping[str, Any], now: datetime) -> tuple[UUID, UUID]:
        """Add one charge to a plan; returns the plan's and the new charge's ids."""
        metric_id, metric = self._charge_metric(organization_id, raw, "charge")
        before = {c.id for c in self.plan(organization_id, plan_code).definition.charges}
        plan_id = self._redefine(
            Plan, organization_id, plan_code,
            lambda d: with_charge(d, raw, code=None, metric=metric, metric_id=metric_id, stamp=Stamp(uuid4, now)),
            lambda d: self._check_plan(organization_id, d),
        )
        added = next(c.id for c in self._load(plan_id, Plan, PlanNotFound).definition.charges if c.id not in before)
        return plan_id, added

    def update_charge(
        self, organization_id: UUID, plan_code: str, charge_code: str, raw: Mapping[str, Any], now: datetime
    ) -> tuple[UUID, UUID]:
        charge = self.plan(organization_id, plan_code).definition.charge(charge_code)
        metric_id, metric = self._charge_metric(organization_id, {"billable_metric_id": charge.billable_metric_id, **raw}, "charge")
        plan_id = self._redefine(
            Plan, organization_id, plan_code,
            lambda d: with_charge(d, raw, code=charge_code, metric=metric, metric_id=metric_id, stamp=Stamp(uuid4, now)),
            lambda d: self._check_plan(organization_id, d),
        )
        return plan_id, charge.id

    def remove_charge(self, organization_id: UUID, plan_code: str, charge_code: str) -> Charge:
        removed = self.plan(organization_id, plan_code).definition.charge(charge_code)
        self._redefine(Plan, organization_id, plan_code, lambda d: without_charge(d, charge_code))
        return removed

    def add_charge_filter(
        self, organization_id: UUID, plan_code: str, charge_code: str, raw: Mapping[str, Any], now: datetime,
        filter_id: UUID | None = None,
    ) -> tuple[UUID, UUID, UUID]:
        """Add (or, with ``filter_id``, change) a filter; returns plan, charge and filter ids."""
        charge = self.plan(organization_id, plan_code).definition.charge(charge_code)
        metric = self._owned(organization_id, charge.billable_metric_id, BillableMetric, BillableMetricNotFound).definition
        made: list[UUID] = []

        def change(definition: PlanDefinition) -> PlanDefinition:
            amended, made_id = with_filter(definition, charge_code, raw, filter_id=filter_id, metric=metric, stamp=Stamp(uuid4, now))
            made.append(made_id)
            return amended

        plan_id = self._redefine(Plan, organization_id, plan_code, change)
        return plan_id, charge.id, made[0]

    def remove_charge_filter(self, organization_id: UUID, plan_code: str, charge_code: str, filter_id: UUID) -> ChargeFilter:
        charge = self.plan(organization_id, plan_code).definition.charge(charge_code)
        removed = charge_filter(charge, filter_id)
        self._redefine(Plan, organization_id, plan_code, lambda d: without_filter(d, charge_code, filter_id))
        return removed

    def _charge_metrics(self, organization_id: UUID, charges: Iterable[Mapping[str, Any]]) -> dict[UUID, MetricDefinition]:
        metrics: dict[UUID, MetricDefinition] = {}
        for index, raw in enumerate(charges):
            metric_id, metric = self._charge_metric(organization_id, raw, f"charges.{index}")
            metrics[metric_id] = metric
        return metrics

    def _charge_metric(self, organization_id: UUID, raw: Mapping[str, Any], path: str) -> tuple[UUID, MetricDefinition]:
        """The live metric a charge names, in the caller's organization (404 otherwise, as Lago)."""
        reference = raw.get("billable_metric_id")
        if not reference:
            raise ValidationFailed({f"{path}.billable_metric_id": ["value_is_mandatory"]})
        try:
            metric_id = reference if isinstance(reference, UUID) else UUID(str(reference))
        except ValueError:
            raise BillableMetricNotFound(key=reference) from None
        metric = self._owned(organization_id, metric_id, BillableMetric, BillableMetricNotFound)
        metric.require_live()
        return metric_id, metric.definition

    def _check_plan(self, organization_id: UUID, plan: PlanDefinition) -> None:
        codes = list(plan.tax_codes)
        if plan.minimum_commitment is not None:
            codes.extend(plan.minimum_commitment.tax_codes)
        for charge in plan.charges:
            codes.extend(charge.tax_codes)
        self._require_taxes(organization_id, dict.fromkeys(codes))

    def _check_coupon(self, organization_id: UUID, coupon: CouponDefinition, now: datetime) -> None:
        if coupon.expiration_at is not None and coupon.expiration_at <= now:
            raise ValidationFailed({"expiration_at": ["invalid_date"]})
        for code in coupon.billable_metric_codes:
            self._resolve(organization_id, BillableMetric, code)
        for code in coupon.plan_codes:
            self._resolve(organization_id, Plan, code)

    def _require_taxes(self, organization_id: UUID, codes: Iterable[str]) -> None:
        for code in codes:
            self._resolve(organization_id, Tax, code)

    # --- catalog plumbing ----------------------------------------------------------------

    def _define(
        self, kind: type[C], organization_id: UUID, definition: Any, validate: Callable[[Any], None] | None = None
    ) -> UUID:
        item = kind.define(organization_id, definition)
        if validate is not None:
            validate(item.definition)
        handle = self._claim(organization_id, kind.kind, item.key, item.id, "code")
        self._save_claiming("code", item, handle)
        return item.id

    def _redefine(
        self,
        kind: type[C],
        organization_id: UUID,
        key: str,
        changes: Mapping[str, Any] | Callable[[Any], Any],
        validate: Callable[[Any], None] | None = None,
    ) -> UUID:
        """Replace an item's definition: ``changes`` are sent fields, or a function of the old one."""
        handle, item = self._resolve(organization_id, kind, key)
        amend = changes if callable(changes) else (lambda definition: definition.amended(changes))
        definition = amend(item.definition)
        if validate is not None:
            validate(definition)
        item.redefine(definition)
        changed: list[Aggregate] = [item]
        if item.key != handle.key:
            changed.append(self._claim(organization_id, kind.kind, item.key, item.id, "code"))
            handle.release()
            changed.append(handle)
        self._save_claiming("code", *changed)
        return item.id

    def _delete(self, kind: type[C], organization_id: UUID, key: str) -> UUID:
        handle, item = self._resolve(organization_id, kind, key)
        item.delete()
        handle.release()
        self._save(item, handle)
        return item.id

    # --- handles -------------------------------------------------------------------------

    def _handle(self, organization_id: UUID, kind: str, key: str) -> Handle | None:
        try:
            handle = self.repository.get(Handle.create_id(organization_id, kind, key))
        except AggregateNotFoundError:
            return None
        return handle if isinstance(handle, Handle) else None

    def _claim(self, organization_id: UUID, kind: str, key: str, target_id: UUID, field: str) -> Handle:
        """The handle of ``key`` bound to ``target_id``; value_already_exist if another holds it."""
        handle = self._handle(organization_id, kind, key)
        if handle is None:
            return Handle(organization_id=organization_id, kind=kind, key=key, target_id=target_id)
        if not handle.is_free_for(target_id):
            raise ValidationFailed({field: ["value_already_exist"]})
        handle.bind(target_id)
        return handle

    def _resolve(self, organization_id: UUID, kind: type[C], key: str) -> tuple[Handle, C]:
        handle = self._handle(organization_id, kind.kind, key)
        if handle is None or handle.target_id is None:
            raise kind.missing(key=key)
        return handle, self._owned(organization_id, handle.target_id, kind, kind.missing)

    def _owned(self, organization_id: UUID, aggregate_id: UUID, kind: type[A], missing: type[NotFound]) -> A:
        """Load an aggregate by id, but only if it belongs to the caller's organization."""
        aggregate = self._load(aggregate_id, kind, missing)
        if getattr(aggregate, "organization_id", None) != organization_id:
            raise missing(key=aggregate_id)
        return aggregate

    def _save_claiming(self, field: str, *aggregates: Aggregate) -> None:
        """Save; losing a race for a key is the same refusal as finding it taken."""
        try:
            self.save(*aggregates)
        except IntegrityError:
            if any(isinstance(a, Handle) for a in aggregates):
                raise ValidationFailed({field: ["value_already_exist"]}) from None
            raise ConcurrentWrite("another write changed this first; retry") from None

    # --- plumbing ------------------------------------------------------------------------

    def _issue_key(self, organization: Organization, name: str) -> tuple[ApiKey, IssuedKey]:
        secret = api_key.new_secret()
        key = ApiKey(secret_hash=api_key.hash_secret(secret), organization_id=organization.id, name=name)
        organization.record_api_key(key.id)
        return key, IssuedKey(key_id=key.id, organization_id=organization.id, secret=secret)

    def _load(self, aggregate_id: UUID, kind: type[A], missing: type[Exception]) -> A:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise missing(key=aggregate_id) from None
        if not isinstance(aggregate, kind):
            raise missing(key=aggregate_id)
        return aggregate

    def _save(self, *aggregates: Aggregate) -> Sequence[Any]:
        try:
            return self.save(*aggregates)
        except IntegrityError:
            raise ConcurrentWrite("another write changed this first; retry") from None
