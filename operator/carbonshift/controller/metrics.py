"""Prometheus metrics: jobs by phase, gCO2eq emitted and saved, decision latency, signal age,
dispatch errors, deadline misses and who leads. One registry per operator so tests can read it
directly; controller/health.py serves it on ``/metrics`` (on every replica, followers included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.jobs = Gauge("carbonshift_jobs", "CarbonAwareJobs by phase.", ["phase"], registry=r)
        self.unplaced = Gauge("carbonshift_jobs_unplaced",
                              "Unfinished CarbonAwareJobs the planner could not place (condition Scheduled=False), "
                              "by its reason (NoCapacity, NoAllowedRegion, ...).", ["reason"], registry=r)
        self.emitted = Counter("carbonshift_emitted_grams_total",
                               "Estimated gCO2eq emitted by succeeded jobs.", ["region"], registry=r)
        self.baseline = Counter("carbonshift_baseline_grams_total",
                                "Estimated gCO2eq succeeded jobs would have emitted run at once in their home region "
                                "(net savings = this - carbonshift_emitted_grams_total).", ["region"], registry=r)
        self.saved = Counter("carbonshift_saved_grams_total",
                             "Estimated gCO2eq saved by succeeded jobs against running at once in their home region "
                             "(a job that emitted more adds 0; failed jobs add nothing).",
                             ["region"], registry=r)
        self.decision_latency = Histogram(
            "carbonshift_decision_latency_seconds", "From first sight of a job to its first decision.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.cycle_seconds = Histogram("carbonshift_cycle_duration_seconds", "Duration of one scheduling cycle.",
                                       buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.signal_age = Gauge("carbonshift_signal_age_seconds", "Age of the newest carbon signal per region.",
                                ["region"], registry=r)
        self.signal_intensity = Gauge("carbonshift_signal_intensity_grams_per_kwh",
                                      "Current grid carbon intensity per region.", ["region"], registry=r)
        self.dispatch_errors = Counter("carbonshift_dispatch_errors_total", "Failed member-cluster operations.",
                                       ["cluster", "operation"], registry=r)
        self.dispatches = Counter("carbonshift_dispatches_total", "Jobs created in member clusters.",
                                  ["cluster"], registry=r)
        self.events_dropped = Counter("carbonshift_events_dropped_total",
                                      "Kubernetes Events not posted because the event queue was full.", registry=r)
        self.member_ready = Gauge("carbonshift_member_ready", "1 when the member cluster is reachable.",
                                  ["cluster"], registry=r)
        self.deadline_misses = Counter(
            "carbonshift_deadline_misses_total",
            "Jobs whose run ended after their deadline (spec.deadline, or submission + maxDelay + duration). "
            "hub_namespace, not namespace: a scrape's own namespace label would clash.",
            ["hub_namespace", "cluster"], registry=r)
        self.kueue_workloads = Gauge("carbonshift_kueue_workloads",
                                     "Kueue Workloads carbonshift acts on, by state (held, dispatched, running...).",
                                     ["state"], registry=r)
        self.kueue_decisions = Counter("carbonshift_kueue_decisions_total",
                                       "Decisions on Kueue Workloads: held, ready, dispatched, relocated.",
                                       ["decision"], registry=r)
        self.kueue_cycle_seconds = Histogram("carbonshift_kueue_cycle_duration_seconds",
                                             "Duration of one pass over the Kueue Workloads.",
                                             buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        # Followers export 0, so "which replica acts" and "is anyone acting" are both one query.
        self.leader = Gauge("carbonshift_leader", "1 on the replica that holds the Lease and acts, 0 on followers.",
                            registry=r)
