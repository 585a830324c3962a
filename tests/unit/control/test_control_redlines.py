"""Redlines on blocks: threshold, band, rate, duration across blocks, median voting, staleness."""

from __future__ import annotations

import numpy as np

from rigwatch.control.redlines import RedlineConfig, RedlineMonitor, RedlineState

MS = 1_000_000


def block(values: list[list[float]], t0_ms: int, step_ms: int = 1) -> tuple[np.ndarray, np.ndarray]:
    data = np.array(values, dtype=np.float32)
    stamps = (t0_ms + step_ms * np.arange(len(values), dtype=np.int64)) * MS
    return data, stamps


def test_control_threshold_trips_on_the_first_violating_sample() -> None:
    st = RedlineState(RedlineConfig(name="over", channels=["P3"], max=25.0))
    data, t = block([[20.0], [24.9], [25.1], [30.0]], 0)
    trip = st.evaluate(data, t)
    assert trip is not None and trip.time_ns == 2 * MS and trip.value == np.float32(25.1)
    assert "P3 > 25" in trip.message
    assert st.evaluate(data, t) is None  # once


def test_control_band_trips_below_and_above() -> None:
    cfg = RedlineConfig(name="band", channels=["P1"], min=2.0, max=30.0)
    assert RedlineState(cfg).evaluate(*block([[5.0], [31.0]], 0)) is not None
    assert RedlineState(cfg).evaluate(*block([[5.0], [1.0]], 0)) is not None
    assert RedlineState(cfg).evaluate(*block([[2.0], [30.0]], 0)) is None


def test_control_duration_counts_across_blocks_and_resets_on_recovery() -> None:
    st = RedlineState(RedlineConfig(name="d", channels=["P3"], max=25.0, duration_s=0.010))
    assert st.evaluate(*block([[26.0]] * 6, 0)) is None  # 0..5 ms over
    assert st.evaluate(*block([[20.0]], 6)) is None  # recovers: run restarts
    assert st.evaluate(*block([[26.0]] * 6, 7)) is None  # 7..12 ms: 5 ms
    trip = st.evaluate(*block([[26.0]] * 6, 13))  # reaches 10 ms at 17 ms
    assert trip is not None and trip.time_ns == 17 * MS


def test_control_rate_of_change_uses_the_previous_block() -> None:
    st = RedlineState(RedlineConfig(name="r", channels=["THRUST"], rate_max=1000.0))
    assert st.evaluate(*block([[0.0], [0.5], [1.0]], 0)) is None  # 500 N/s
    trip = st.evaluate(*block([[3.0]], 3))  # 2 N in 1 ms = 2000 N/s, across blocks
    assert trip is not None and "dTHRUST/dt" in trip.message


def test_control_median_of_three_ignores_one_failed_sensor() -> None:
    cfg = RedlineConfig(name="v", channels=["P3", "P4", "P5"], max=25.0)
    st = RedlineState(cfg)
    # P4 fails high: the median stays with the two good ones; a dropout (NaN) is ignored
    assert st.evaluate(*block([[20.0, 99.0, 21.0], [20.0, 99.0, 22.0]], 0)) is None
    assert st.evaluate(*block([[20.0, float("nan"), 21.0]], 1)) is None
    trip = st.evaluate(*block([[26.0, 99.0, 27.0]], 2))
    assert trip is not None and trip.value == 27.0


def test_control_any_and_all_votes() -> None:
    any_cfg = RedlineConfig(name="a", channels=["P3", "P4"], vote="any", max=25.0)
    all_cfg = RedlineConfig(name="b", channels=["P3", "P4"], vote="all", max=25.0)
    row = block([[30.0, 20.0]], 0)
    assert RedlineState(any_cfg).evaluate(*row) is not None
    assert RedlineState(all_cfg).evaluate(*row) is None
    assert RedlineState(all_cfg).evaluate(*block([[30.0, float("nan")]], 0)) is not None


def test_control_staleness_watchdog_trips_without_data() -> None:
    trips = []
    mon = RedlineMonitor(on_trip=trips.append)
    cfg = RedlineConfig(name="s", channels=["P3"], max=25.0, max_age_s=0.5)
    mon.set_active([cfg], now_ns=0)
    mon.feed(["P3"], *block([[1.0]], 100))
    assert mon.check_stale(500 * MS) == []
    mon.feed(["P3"], *block([[float("nan")]], 550))  # no finite value: does not refresh
    found = mon.check_stale(700 * MS)
    assert [t.redline for t in found] == ["s"] and trips == found
    assert "stale" in found[0].message


def test_control_monitor_skips_blocks_of_other_devices_and_inactive_redlines() -> None:
    trips = []
    mon = RedlineMonitor(on_trip=trips.append)
    mon.set_active([RedlineConfig(name="o", channels=["P3"], max=1.0)], now_ns=0)
    mon.feed(["X"], *block([[5.0]], 0))
    assert trips == []
    mon.set_active([], now_ns=0)
    mon.feed(["P3"], *block([[5.0]], 1))
    assert trips == []
