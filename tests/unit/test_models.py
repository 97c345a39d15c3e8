"""Unit and property tests of the enrichment models: polling and webhook parsing, flags."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from prefect_lemlist.api.exceptions import LemlistResponseError
from prefect_lemlist.api.models import Enrichment, EnrichmentFlags

LINKEDIN = {"linkedinUrl": "https://www.linkedin.com/in/john", "firstName": "John"}

# ------------------------------------------------------------------------- from_polling


def test_polling_202_in_progress_body():
    body = {"enrichmentId": "enr_1", "enrichmentStatus": "in-progress", "data": {}}
    enrichment = Enrichment.from_polling(body, http_status=202)
    assert enrichment.enrichment_id == "enr_1"
    assert enrichment.status == "in-progress"
    assert enrichment.in_progress is True
    assert enrichment.done is False
    assert enrichment.found_anything is False
    assert enrichment.raw == body


def test_polling_202_without_status_is_in_progress():
    enrichment = Enrichment.from_polling({"enrichmentId": "enr_1"}, http_status=202)
    assert enrichment.in_progress is True
    assert enrichment.done is False


def test_polling_200_without_status_is_refused():
    with pytest.raises(LemlistResponseError) as info:
        Enrichment.from_polling({"enrichmentId": "enr_1"}, http_status=200)
    assert info.value.status_code == 200


def test_polling_200_done_body_with_every_workflow():
    body = {
        "enrichmentId": "enr_1",
        "enrichmentStatus": "done",
        "input": {"firstName": "John"},
        "data": {
            "email": {"email": "john@example.com", "notFound": False, "status": "deliverable"},
            "phone": {"phone": "+33123456789", "notFound": False},
            "linkedin": {**LINKEDIN, "notFound": False},
        },
    }
    enrichment = Enrichment.from_polling(body, http_status=200)
    assert enrichment.done is True
    assert enrichment.in_progress is False
    assert enrichment.email == "john@example.com"
    assert enrichment.email_status == "deliverable"
    assert enrichment.phone == "+33123456789"
    assert enrichment.linkedin == LINKEDIN  # notFound stripped
    assert enrichment.found_anything is True


@pytest.mark.parametrize("key", ["linkedin", "linkedin_enrichment", "linkedinEnrichment"])
def test_polling_linkedin_key_spellings(key):
    body = {"enrichmentId": "enr_1", "enrichmentStatus": "done", "data": {key: dict(LINKEDIN)}}
    assert Enrichment.from_polling(body).linkedin == LINKEDIN


def test_polling_not_found_gives_none():
    body = {
        "enrichmentId": "enr_1",
        "enrichmentStatus": "done",
        "data": {
            "email": {"email": "guess@example.com", "notFound": True},
            "phone": {"phone": "+1", "notFound": True},
            "linkedin": {"notFound": True},
        },
    }
    enrichment = Enrichment.from_polling(body)
    assert enrichment.done is True
    assert enrichment.email is None
    assert enrichment.phone is None
    assert enrichment.linkedin is None
    assert enrichment.found_anything is False


def test_polling_verify_only_keeps_status():
    body = {
        "enrichmentId": "enr_1",
        "enrichmentStatus": "done",
        "data": {"email": {"status": "risky"}},
    }
    enrichment = Enrichment.from_polling(body)
    assert enrichment.email is None
    assert enrichment.email_status == "risky"
    assert enrichment.found_anything is True


def test_polling_id_fallback():
    enrichment = Enrichment.from_polling({"id": "enr_2", "enrichmentStatus": "done"})
    assert enrichment.enrichment_id == "enr_2"


@pytest.mark.parametrize("status", ["error", "failed", "not-found"])
def test_polling_unknown_status_is_finished_not_done(status):
    body = {"enrichmentId": "enr_1", "enrichmentStatus": status, "data": {}}
    enrichment = Enrichment.from_polling(body, http_status=200)
    assert enrichment.status == status
    assert enrichment.done is False
    assert enrichment.in_progress is False


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "done",
        {"enrichmentStatus": "done"},
        {"enrichmentId": 5, "enrichmentStatus": "done"},
        {"enrichmentId": "enr_1", "enrichmentStatus": 1},
    ],
)
def test_polling_unusable_bodies_raise_response_error(body):
    with pytest.raises(LemlistResponseError):
        Enrichment.from_polling(body, http_status=200)


def test_polling_ignores_non_dict_data():
    body = {"enrichmentId": "enr_1", "enrichmentStatus": "done", "data": ["x"]}
    enrichment = Enrichment.from_polling(body)
    assert enrichment.done is True
    assert enrichment.found_anything is False


# ------------------------------------------------------------------------- from_webhook_item


def test_webhook_item_with_every_workflow():
    item = {
        "id": "enr_9",
        "data": {
            "find_email": {"email": "jane@example.com", "status": "deliverable"},
            "verify": {"status": "risky"},
            "find_phone": {"phone": "+33600000000"},
            "linkedin_enrichment": dict(LINKEDIN),
        },
    }
    enrichment = Enrichment.from_webhook_item(item, event_type="enrichmentDone")
    assert enrichment.enrichment_id == "enr_9"
    assert enrichment.status == "done"
    assert enrichment.done is True
    assert enrichment.email == "jane@example.com"
    assert enrichment.email_status == "deliverable"  # find_email's status wins over verify's
    assert enrichment.phone == "+33600000000"
    assert enrichment.linkedin == LINKEDIN
    assert enrichment.raw == item


def test_webhook_verify_only_gives_status():
    enrichment = Enrichment.from_webhook_item({"id": "enr_9", "data": {"verify": {"status": "x"}}})
    assert enrichment.email is None
    assert enrichment.email_status == "x"


def test_webhook_not_found_gives_none():
    item = {
        "id": "enr_9",
        "data": {
            "find_email": {"email": "e@example.com", "notFound": True},
            "find_phone": {"phone": "+1", "notFound": True},
            "linkedin_enrichment": {"notFound": True},
        },
    }
    enrichment = Enrichment.from_webhook_item(item)
    assert (enrichment.email, enrichment.phone, enrichment.linkedin) == (None, None, None)


def test_webhook_enrichment_error_type():
    enrichment = Enrichment.from_webhook_item(
        {"id": "enr_9", "data": {}}, event_type="enrichmentError"
    )
    assert enrichment.status == "error"
    assert enrichment.done is False
    assert enrichment.in_progress is False


def test_webhook_without_type_is_done():
    assert Enrichment.from_webhook_item({"id": "enr_9"}).done is True


@pytest.mark.parametrize("item", [None, [], {"data": {}}, {"id": 3}, "enr_9"])
def test_webhook_unusable_items_raise_response_error(item):
    with pytest.raises(LemlistResponseError):
        Enrichment.from_webhook_item(item)


# ------------------------------------------------------------------------- EnrichmentFlags


@pytest.mark.parametrize(
    ("kwargs", "params", "label"),
    [
        ({"find_email": True}, {"findEmail": "true"}, "find_email"),
        ({"verify_email": True}, {"verifyEmail": "true"}, "verify"),
        ({"linkedin_enrichment": True}, {"linkedinEnrichment": "true"}, "linkedin_enrichment"),
        ({"find_phone": True}, {"findPhone": "true"}, "find_phone"),
        (
            {"find_email": True, "find_phone": True},
            {"findEmail": "true", "findPhone": "true"},
            "find_email+find_phone",
        ),
        (
            {
                "find_email": True,
                "verify_email": True,
                "linkedin_enrichment": True,
                "find_phone": True,
            },
            {
                "findEmail": "true",
                "verifyEmail": "true",
                "linkedinEnrichment": "true",
                "findPhone": "true",
            },
            "find_email+verify+linkedin_enrichment+find_phone",
        ),
    ],
)
def test_flags_query_params_and_label(kwargs, params, label):
    flags = EnrichmentFlags(**kwargs)
    assert flags.query_params() == params
    assert flags.label() == label
    assert flags.require_any() is flags


def test_no_flags():
    flags = EnrichmentFlags()
    assert flags.query_params() == {}
    assert flags.label() == "none"
    with pytest.raises(ValueError):
        flags.require_any()


def test_flags_are_frozen_and_hashable():
    flags = EnrichmentFlags(find_email=True)
    with pytest.raises(ValidationError):
        flags.find_email = False  # type: ignore[misc]
    assert hash(flags) == hash(EnrichmentFlags(find_email=True))


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_flags_property_label_and_params_agree(a, b, c, d):
    flags = EnrichmentFlags(find_email=a, verify_email=b, linkedin_enrichment=c, find_phone=d)
    params = flags.query_params()
    assert set(params.values()) <= {"true"}
    assert len(params) == sum((a, b, c, d)) == len(flags.workflows)
    assert (flags.label() == "none") == (not params)


# ------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
# Bodies that look like enrichments, so the parser goes past its first checks.
key_names = st.sampled_from(
    [
        "enrichmentId",
        "id",
        "enrichmentStatus",
        "data",
        "email",
        "phone",
        "linkedin",
        "linkedin_enrichment",
        "linkedinEnrichment",
        "find_email",
        "find_phone",
        "verify",
        "notFound",
        "status",
    ]
)
shaped_values = st.recursive(
    json_scalars | st.sampled_from(["enr_1", "done", "in-progress"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(key_names | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)
anything = json_values | shaped_values


@settings(max_examples=300, deadline=None)
@given(anything, st.sampled_from([None, 200, 202, 404]))
def test_from_polling_returns_enrichment_or_raises_response_error(body, http_status):
    try:
        result = Enrichment.from_polling(body, http_status=http_status)
    except LemlistResponseError:
        return
    assert isinstance(result, Enrichment)
    assert result.done == (result.status == "done")
    assert result.email is None or isinstance(result.email, str)


@settings(max_examples=300, deadline=None)
@given(anything, st.none() | st.sampled_from(["enrichmentDone", "enrichmentError"]) | st.text())
def test_from_webhook_item_returns_enrichment_or_raises_response_error(item, event_type):
    try:
        result = Enrichment.from_webhook_item(item, event_type=event_type)
    except LemlistResponseError:
        return
    assert isinstance(result, Enrichment)
    assert result.status in {"done", "error"}
    assert result.done == (event_type != "enrichmentError")
