"""What a Kueue Workload's owner asks of carbonshift, and the core Job it becomes (pure).

The owner (a batch/v1 Job, the Pods of a pod group, a JobSet...) carries annotations; Kueue
copies none of them to the Workload, so the rooms read them from the owner. Every value may be
written by a hostile tenant: each is parsed here, capped by the namespace's CarbonPolicy (or the
operator's default maxDelay), and a bad one is reported, never trusted.

Annotations (all optional; without ``max-delay`` the Workload is never delayed):
- ``carbonshift.io/max-delay``: Go duration the start may be held back (e.g. ``6h``).
- ``carbonshift.io/estimated-duration``: Go duration of the run (default: the Workload's
  maximumExecutionTimeSeconds, else 1h).
- ``carbonshift.io/regions``: comma-separated regions the work may run in.
- ``carbonshift.io/watts``: average power (default: requested CPUs x minWattsPerCpu).
- ``carbonshift.io/interruptible``: ``"true"`` lets carbonshift move running work to a clearly
  greener region (eviction and re-nomination).
- ``carbonshift.io/policy``: the CarbonPolicy to use (default: the namespace's ``default``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from carbonshift.api import CarbonPolicySpec
from carbonshift.api.duration import format_duration, parse_duration
from carbonshift.api.policy import DEFAULT_POLICY_NAME
from carbonshift.controller.settings import DefaultPolicy
from carbonshift.core import Job, PlannerOptions
from carbonshift.kueue.workloads import Workload

PREFIX = "carbonshift.io/"
MAX_DELAY = PREFIX + "max-delay"
DURATION = PREFIX + "estimated-duration"
REGIONS = PREFIX + "regions"
WATTS = PREFIX + "watts"
INTERRUPTIBLE = PREFIX + "interruptible"
POLICY = PREFIX + "policy"
DEFAULT_DURATION = timedelta(hours=1)
MAX_WATTS = 1e7  # 10 MW: a larger "average power" is a typo or an attack on the accounting


@dataclass(frozen=True)
class Intent:
    """The Workload's carbon request after parsing and capping."""

    max_delay: timedelta  # 0: not delayed
    duration: timedelta
    regions: tuple[str, ...] | None  # None: every region the policy allows
    watts: float
    interruptible: bool
    policy_source: str
    dry_run: bool
    safety_margin: float
    run_now_below: float | None
    signal_fallback: str
    max_signal_age: timedelta
    problems: tuple[str, ...] = ()  # bad annotations, for the check's message and a Warning Event
    capped: str | None = None  # set when the policy shortened the asked delay

    @property
    def delays(self) -> bool:
        return self.max_delay > timedelta(0) and not self.dry_run


def read_intent(workload: Workload, owner_annotations: dict[str, str], policies: dict[str, CarbonPolicySpec],
                defaults: DefaultPolicy, min_watts_per_cpu: float) -> Intent:
    notes = owner_annotations
    problems: list[str] = []
    wanted_policy = notes.get(POLICY)
    if wanted_policy and wanted_policy not in policies:
        problems.append(f"CarbonPolicy {workload.namespace}/{wanted_policy} named in {POLICY} does not exist; "
                        "using the namespace's default")
        wanted_policy = None
    name = wanted_policy or (DEFAULT_POLICY_NAME if DEFAULT_POLICY_NAME in policies else None)
    spec = policies.get(name) if name else None
    cap = spec.max_delay if spec is not None and spec.max_delay is not None else defaults.max_delay

    def duration_of(key: str, default: timedelta) -> timedelta:
        text = notes.get(key)
        if text is None:
            return default
        try:
            value = parse_duration(text)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            return default
        if value < timedelta(0):
            problems.append(f"{key}: must not be negative")
            return default
        return value

    asked = duration_of(MAX_DELAY, timedelta(0))
    max_delay = min(asked, cap)
    by = f"CarbonPolicy {workload.namespace}/{name}" if spec is not None else "the operator default"
    capped = f"{MAX_DELAY} {notes.get(MAX_DELAY)} capped to {format_duration(cap)} by {by}" if asked > cap else None
    default_duration = (timedelta(seconds=int(workload.max_execution_seconds))
                        if workload.max_execution_seconds else DEFAULT_DURATION)
    duration = duration_of(DURATION, default_duration) or default_duration
    regions: tuple[str, ...] | None = None
    if REGIONS in notes:
        regions = tuple(sorted({r.strip() for r in notes[REGIONS].split(",") if r.strip()}))
    if spec is not None and spec.allowed_regions:
        allowed = set(spec.allowed_regions)
        regions = tuple(sorted(allowed if regions is None else allowed.intersection(regions)))
    watts = max(workload.cpus * min_watts_per_cpu, 1.0)
    if WATTS in notes:
        try:
            value = float(notes[WATTS])
            if not 0 < value <= MAX_WATTS:
                raise ValueError
            watts = value
        except ValueError:
            problems.append(f"{WATTS}: {notes[WATTS]!r} is not a power in watts between 0 and {MAX_WATTS:.0f}")
    return Intent(
        max_delay=max_delay, duration=duration, regions=regions, watts=watts,
        interruptible=notes.get(INTERRUPTIBLE, "").lower() == "true",
        policy_source=f"CarbonPolicy {workload.namespace}/{name}" if spec is not None else "operator defaults",
        dry_run=bool(spec.dry_run) if spec is not None else False,
        safety_margin=spec.forecast_safety_margin if spec is not None else defaults.forecast_safety_margin,
        run_now_below=spec.run_now_below_intensity if spec is not None else defaults.run_now_below_intensity,
        signal_fallback=str(spec.signal_fallback) if spec is not None else defaults.signal_fallback,
        max_signal_age=spec.max_signal_age if spec is not None else defaults.max_signal_age,
        problems=tuple(problems), capped=capped,
    )


def core_job(workload: Workload, intent: Intent, regions: tuple[str, ...], submitted: datetime,
             now: datetime) -> Job:
    """The decision core's job: start no later than ``submitted + max_delay``."""
    delay = intent.max_delay if intent.delays else timedelta(0)
    return Job(
        id=workload.key, submit_at=max(submitted, now), duration=intent.duration,
        # Past its latest start the Workload still gets a plan that starts now (best region now).
        deadline=max(submitted + delay, now) + intent.duration + intent.safety_margin * intent.duration,
        power_w=intent.watts, allowed_regions=regions,
        # The baseline (what running without carbonshift would emit) runs in the first allowed region.
        home_region=regions[0] if regions else None, interruptible=False,
    )


def planner_options(intent: Intent) -> PlannerOptions:
    return PlannerOptions(safety_margin_fraction=intent.safety_margin, run_now_below_g_per_kwh=intent.run_now_below)
