"""The learned policy's record kept across a restart (signals/record.py, ForecastConditioner's
export/import): what is restored plans exactly as what was recorded, and a stored record that is
garbled, oversized or wrong in any way is refused with a reason, never half-used."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from test_conditioning import HOUR, T0, forecast, history, run_hours

from carbonshift.signals.conditioning import RECORD_LEADS, WINDOW_DAYS, ForecastConditioner
from carbonshift.signals.record import (MAX_ENCODED_BYTES, ForecastRecord, RecordError, decode_record,
                                        encode_record)

HORIZON = timedelta(hours=48)


@pytest.fixture(scope="module")
def recorded() -> tuple[ForecastConditioner, object]:
    conditioner = ForecastConditioner()
    now = run_hours(conditioner, 9 * 24, bias=40.0)
    return conditioner, now


def test_a_restored_record_plans_exactly_as_the_one_recorded(recorded) -> None:
    before, now = recorded
    restored = ForecastConditioner()  # the operator restarted ...
    restored.import_record(decode_record(encode_record(before.export_record())), now)  # ... and read its record
    exported, again = before.export_record(), restored.export_record()
    for name in ("issue_hours", "issued", "measured_hours", "measured_sum", "measured_count", "last_measured_s"):
        assert np.array_equal(getattr(exported, name), getattr(again, name), equal_nan=True), name
    a = before.detached().condition(forecast(now, 40.0), history(now), now, HORIZON)  # (the fixture stays as it is)
    b = restored.condition(forecast(now, 40.0), history(now), now, HORIZON)
    assert np.array_equal(a.planned, b.planned, equal_nan=True)
    assert "bias-corrected by up to -40 g/kWh" in (b.reason or "")
    assert "learned from 9 days of its forecasts, 9 of them recorded before the operator restarted" in (b.reason or "")


def test_days_recorded_after_the_restart_add_to_the_restored_ones(recorded) -> None:
    before, now = recorded
    restored = ForecastConditioner()
    restored.import_record(before.export_record(), now)
    later = run_hours(restored, 24, bias=40.0, start=now)
    reason = restored.condition(forecast(later, 40.0), history(later), later, HORIZON).reason or ""
    assert "learned from 10 days of its forecasts, 9 of them recorded before the operator restarted" in reason


def test_a_full_record_encodes_well_under_a_configmaps_limit() -> None:
    """28 days x 24 issues x 48 h, float32 values with decimals (the worst case for compression)."""
    rng = np.random.default_rng(3)
    n = WINDOW_DAYS * 24 + 2
    hours = np.arange(n, dtype=np.int64) + 460_000
    values = (300 + rng.normal(0, 80, (n, RECORD_LEADS))).clip(0).astype(np.float32)
    record = ForecastRecord(hours, values, hours, values[:, 0].astype(np.float64) * 12, np.full(n, 12), None)
    encoded = encode_record(record)
    assert len(encoded) < 200_000  # measured: about 100 KB (45 KB for whole g/kWh values)
    assert np.array_equal(decode_record(encoded).issued, values)


def good() -> ForecastRecord:
    hours = np.array([460_000, 460_001, 460_002], dtype=np.int64)
    values = np.full((3, RECORD_LEADS), 250.0, dtype=np.float32)
    values[:, 30:] = np.nan  # a 30 h forecast
    return ForecastRecord(hours, values, hours, np.array([250.0, 500.0, 250.0]), np.array([1, 2, 1]), None)


NOW = T0.replace(year=2022) + timedelta(hours=460_010 - int(T0.timestamp() // 3600))


def refused(record: ForecastRecord) -> str:
    with pytest.raises(RecordError) as caught:
        ForecastConditioner().import_record(record, NOW)
    return str(caught.value)


def test_the_good_record_is_accepted() -> None:
    conditioner = ForecastConditioner()
    conditioner.import_record(good(), NOW)
    assert conditioner.recorded_issues == 3 and conditioner.latest_issue_hour == 460_002


@pytest.mark.parametrize("change, why", [
    (lambda r: replace(r, issued=r.issued[:, :24]), "shape"),
    (lambda r: replace(r, issue_hours=r.issue_hours[::-1].copy()), "ascending"),
    (lambda r: replace(r, issue_hours=np.array([460_000, 460_000, 460_001])), "ascending"),
    (lambda r: replace(r, issue_hours=r.issue_hours + 100), "past now"),
    (lambda r: replace(r, issued=np.where(np.isnan(r.issued), r.issued, np.float32(np.inf))), "outside"),
    (lambda r: replace(r, issued=r.issued - 300), "outside"),
    (lambda r: replace(r, issued=r.issued * 100), "outside"),
    (lambda r: replace(r, measured_count=np.array([1, 0, 1])), "no value"),
    (lambda r: replace(r, measured_sum=np.array([1.0, np.nan, 1.0])), "non-finite"),
    (lambda r: replace(r, measured_sum=r.measured_sum[:2]), "length"),
    (lambda r: replace(r, last_measured_s=float("nan")), "newest measured"),
])
def test_a_wrong_record_is_refused_and_nothing_of_it_is_kept(change, why) -> None:
    conditioner = ForecastConditioner()
    conditioner.import_record(good(), NOW)
    with pytest.raises(RecordError, match=why):
        conditioner.import_record(change(good()), NOW)
    assert conditioner.recorded_issues == 3  # the record it had is untouched


@pytest.mark.parametrize("payload, why", [
    (b"", "truncated|not zlib"),
    (b"garbage that is not zlib", "not zlib"),
    (zlib.compress(b"XXXX" + bytes(60)), "not a forecast record"),
    (encode_record(good())[:-10], "truncated|not zlib"),
    (zlib.compress(bytes(4 << 20)), "inflates past"),
    (bytes(MAX_ENCODED_BYTES + 1), "more than"),
])
def test_garbled_bytes_are_refused_with_a_reason(payload: bytes, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        decode_record(payload)


def test_a_header_that_lies_about_the_sizes_is_refused() -> None:
    raw = zlib.decompress(encode_record(good()))
    header = struct.Struct("<4sBHIIBdqq")
    fields = list(header.unpack_from(raw))
    fields[3] = 4000  # claims 4000 forecasts
    with pytest.raises(RecordError, match="do not hold"):
        decode_record(zlib.compress(header.pack(*fields) + raw[header.size:]))
    fields[3], fields[1] = 3, 9
    with pytest.raises(RecordError, match="format 9"):
        decode_record(zlib.compress(header.pack(*fields) + raw[header.size:]))


def test_refit_on_a_detached_copy_gives_the_same_result_and_is_adopted(recorded) -> None:
    """What the operator does off the event loop: compute on a copy, adopt its result."""
    before, now = recorded
    later = now + HOUR
    direct = ForecastConditioner()
    direct.import_record(before.export_record(), now)
    expected = direct.condition(forecast(later, 40.0), history(later), later, HORIZON)
    conditioner = ForecastConditioner()
    conditioner.import_record(before.export_record(), now)
    assert conditioner.cached(forecast(later, 40.0), history(later), later, HORIZON) is None  # a new hour: refit
    twin = conditioner.detached()
    result = twin.condition(forecast(later, 40.0), history(later), later, HORIZON)
    assert np.array_equal(result.planned, expected.planned, equal_nan=True) and result.reason == expected.reason
    conditioner.adopt(twin)
    assert conditioner.cached(forecast(later, 40.0), history(later), later, HORIZON) is result
