"""The end of a run, recorded on the hub before the member Job is let go.

Emissions are accounted (estimated: energy × PUE × the region's measured mean intensity over
the run when known, else the plan's; measured: Kepler's energy of the pods, when the member has
it), the terminal phase is set with conditions Complete and Failed (as a batch Job has, so
``kubectl wait`` works), and the record-completion finalizer is removed only after the status
write (``after_flush``). A run ending after its deadline counts in
``carbonshift_deadline_misses_total``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from carbonshift.api import JobConditionType, JobPhase, MemberCluster, format_saved
from carbonshift.controller.clock import Clock
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.cycle.plan import core_job_of
from carbonshift.controller.manifests import FINALIZER_RECORD
from carbonshift.controller.memberjobs import MemberJobs
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import SignalHub
from carbonshift.controller.translate import home_region, job_power_w
from carbonshift.core import ReasonCode
from carbonshift.timefmt import parse_iso


def ended(ctx: JobContext, phase: JobPhase, reason: str, message: str, now: datetime) -> None:
    """The terminal phase with the Complete and Failed conditions (for kubectl wait)."""
    ctx.set(phase=phase, message=message)
    ctx.condition(JobConditionType.COMPLETE, phase == JobPhase.SUCCEEDED, reason, message, now)
    ctx.condition(JobConditionType.FAILED, phase == JobPhase.FAILED, reason, message, now)


def release_after_flush(ctx: JobContext, member_jobs: MemberJobs, member: MemberCluster,
                        member_job: dict[str, Any]) -> None:
    """The copy's record-completion finalizer goes once the hub holds the record."""
    if FINALIZER_RECORD not in (member_job["metadata"].get("finalizers") or []):
        return

    async def release() -> None:
        await member_jobs.release(member, member_job)

    ctx.after_flush.append(release)


class Finisher:
    def __init__(self, signals: SignalHub, member_jobs: MemberJobs, metrics: Metrics, clock: Clock,
                 settings: OperatorSettings) -> None:
        self.signals = signals
        self.member_jobs = member_jobs
        self.metrics = metrics
        self.clock = clock
        self.settings = settings

    async def finish(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any], progress: JobPhase,
                     view: CycleView) -> None:
        decision = ctx.current("decision") or {}
        spec = ctx.model.spec
        hours = spec.estimated_duration.total_seconds() / 3600
        power = job_power_w(ctx.model, self.settings.min_watts_per_cpu).watts
        energy_wh = power * hours * member.spec.pue
        estimated = float(decision.get("expectedGrams") or 0.0)
        baseline = float(decision.get("baselineGrams") or estimated)
        start = parse_iso(decision["start"]) if decision.get("start") else view.now
        uses_onsite = any(r.get("code") == ReasonCode.USES_ONSITE_ENERGY.value for r in decision.get("reasons") or [])
        if not uses_onsite and not decision.get("slots"):
            mean = await self.signals.history_mean(member, start, start + spec.estimated_duration)
            if mean is not None:
                estimated = energy_wh / 1000 * mean  # measured intensity over the actual window
                # the baseline on the same footing: measured, at submission in the home region
                measured_baseline = await self._measured_baseline(ctx, power, hours, view)
                if measured_baseline is not None:
                    baseline = measured_baseline
        emissions = {"estimatedGrams": round(estimated, 3), "energyWattHours": round(energy_wh, 3)}
        measured = await self._measured_grams(member, member_job, start, spec.estimated_duration)
        if measured is not None:
            emissions["measuredGrams"] = round(measured, 3)
        ctx.set(emissions=emissions)
        if progress == JobPhase.SUCCEEDED:
            saved = baseline - estimated
            message = (f"succeeded in {member.metadata.name}: {estimated:.0f} gCO2eq ({saved:.0f} g saved against "
                       "running at once in the home region)")
            # the SAVED column now shows what the finished run saved, not what its plan expected
            ctx.set(savedDisplay=format_saved(saved, baseline))
        else:
            # Work that did not complete saved nothing: no saving is shown or counted for it.
            message = (f"{progress.lower()} in {member.metadata.name}: about {estimated:.0f} gCO2eq; no savings "
                       "counted (the work did not complete)")
            ctx.set(savedDisplay=f"none ({progress.lower()})")
        ended(ctx, progress, progress, message, view.now)
        ctx.condition(JobConditionType.DISPATCHED, True, progress, f"Job finished: {progress}", view.now)
        release_after_flush(ctx, self.member_jobs, member, member_job)  # the hub has the record first
        if progress == JobPhase.SUCCEEDED:
            self.metrics.emitted.labels(region=member.spec.region).inc(estimated)
            self.metrics.baseline.labels(region=member.spec.region).inc(max(0.0, baseline))
            self.metrics.saved.labels(region=member.spec.region).inc(max(0.0, baseline - estimated))
        self._count_deadline_miss(ctx, member, member_job, view)
        ctx.event(progress, ctx.current("message"), warning=progress == JobPhase.FAILED)

    async def _measured_baseline(self, ctx: JobContext, power_w: float, hours: float,
                                 view: CycleView) -> float | None:
        """gCO2eq of running at submission in the home region, on that region's measured intensity."""
        home = home_region(ctx.model, ctx.regions)
        member = view.member_for(home, ctx.namespace) if home else None
        if member is None:
            return None
        submitted = ctx.submitted or view.now
        mean = await self.signals.history_mean(member, submitted, submitted + ctx.model.spec.estimated_duration)
        return None if mean is None else power_w * hours * member.spec.pue / 1000 * mean

    def _count_deadline_miss(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                             view: CycleView) -> None:
        """carbonshift_deadline_misses_total: the run ended after the job's deadline (on the operator's
        clock; a failed run has no completionTime, so the moment the cycle saw it end counts)."""
        status = member_job.get("status") or {}
        ended_at = self.clock.from_real(parse_iso(status["completionTime"])) if status.get("completionTime") \
            else view.now
        if ended_at > core_job_of(ctx, view, self.settings).deadline:  # the deadline the planner planned for
            self.metrics.deadline_misses.labels(hub_namespace=ctx.namespace, cluster=member.metadata.name).inc()

    async def _measured_grams(self, member: MemberCluster, member_job: dict[str, Any], start: datetime,
                              duration: timedelta) -> float | None:
        """Kepler-measured energy of the run (real timestamps) × PUE × the region's mean intensity."""
        status = member_job.get("status") or {}
        if not member.spec.energy or not status.get("startTime"):
            return None
        began = parse_iso(status["startTime"])
        ended_at = parse_iso(status["completionTime"]) if status.get("completionTime") else datetime.now(began.tzinfo)
        meta = member_job["metadata"]
        measured_wh = await self.signals.measured_energy_wh(member, meta["namespace"], meta["name"], began, ended_at)
        if measured_wh is None:
            return None
        mean = await self.signals.history_mean(member, start, start + duration)
        return None if mean is None else measured_wh * member.spec.pue / 1000.0 * mean
