"""Step 2 of a cycle: admit. Each active CarbonAwareJob is parsed, its policy resolved and its spec
checked for what the CRD schema cannot say (``validation``), into a ``JobContext``.

A job that is not valid gets phase Pending, condition Valid=False (reason InvalidSpec) and one
Warning Event per new problem; once its status says so it is kept in memory only as text
(``World.trim_invalid``) until it, a MemberCluster or a CarbonPolicy changes. Parsing and checks
are redone only when the job's generation or that configuration changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from carbonshift.api import TERMINAL_PHASES, CarbonAwareJob, CarbonPolicySpec, JobConditionType, JobPhase, JobReason
from carbonshift.controller.clock import Clock
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.status import changed
from carbonshift.controller.validation import allowed_regions, job_problems, resolve_policy
from carbonshift.controller.world import World

log = logging.getLogger(__name__)


class Admission:
    def __init__(self, world: World, settings: OperatorSettings, clock: Clock) -> None:
        self.world = world
        self.settings = settings
        self.clock = clock
        self._models: dict[str, tuple[Any, CarbonAwareJob]] = {}  # uid -> (generation, parsed job)
        # uid -> ((generation, config), (policy, problems, regions)): the checks of a job are redone
        # only when it or a MemberCluster/CarbonPolicy spec changed (the Pod Security walk is not free).
        self._checked: dict[str, tuple[Any, tuple[Any, list[str], tuple[str, ...]]]] = {}

    def admit(self, view: CycleView, busy: Callable[[str], bool]) -> tuple[list[JobContext], list[JobContext], set[str]]:
        """(contexts of valid or running jobs, contexts of invalid ones to write, uids of all active jobs).

        Jobs being deleted, finished, or with writes in flight (``busy``) are left out.
        """
        contexts: list[JobContext] = []
        invalid: list[JobContext] = []
        live: set[str] = set()
        policies: dict[str, dict[str, CarbonPolicySpec]] = {}
        config = self.world.config_fingerprint()
        for (namespace, name), body in self.world.active_jobs():
            meta = body.get("metadata") or {}
            status = body.get("status") or {}
            uid = str(meta.get("uid"))
            live.add(uid)
            if meta.get("deletionTimestamp") or status.get("phase") in TERMINAL_PHASES or busy(uid):
                continue
            trimmed_against = self.world.trimmed_config((namespace, name))
            if trimmed_against is not None:
                if trimmed_against == config:
                    continue  # invalid, and nothing it depends on changed: its status already says why
                body = self.world.restore((namespace, name))
            try:
                model = self._parsed(uid, body)
            except ValidationError as exc:
                self._unparsable(body, status, exc, view, invalid, config)
                continue
            checked = self._checked.get(uid)
            if checked is not None and checked[0] == (meta.get("generation"), config):
                policy, problems, regions = checked[1]
            else:
                if namespace not in policies:
                    policies[namespace] = self.world.namespace_policies(namespace)
                policy, problem = resolve_policy(model, policies[namespace], self.settings.defaults,
                                                self.settings.admin_rules)
                members = list(view.members.values())
                problems = [problem] if problem else job_problems(model, policy, members)  # type: ignore[arg-type]
                regions = allowed_regions(model, policy, members) if policy is not None and not problems else ()
                self._checked[uid] = ((meta.get("generation"), config), (policy, problems, regions))
            if problems or policy is None:
                ctx = self._invalid(body, model, policy, problems, status, view, config)
                (contexts if status.get("memberJob") else invalid).append(ctx)  # a running one goes on
                continue
            ctx = JobContext(body, model, policy, regions, status, submitted=self._submitted(model, view))
            ctx.condition(JobConditionType.VALID, True, JobReason.VALID, f"spec is valid; policy from {policy.source}",
                          view.now)
            contexts.append(ctx)
        for uid in set(self._models) - live:
            del self._models[uid]
        for uid in set(self._checked) - live:
            del self._checked[uid]
        return contexts, invalid, live

    def _submitted(self, model: CarbonAwareJob, view: CycleView) -> Any:
        """Submission time on the operator's clock (the accelerated demo clock maps real times)."""
        created = model.metadata.creation_timestamp
        return self.clock.from_real(created) if created is not None else view.now

    def _invalid(self, body: dict[str, Any], model: CarbonAwareJob, policy: Any, problems: list[str],
                 status: dict[str, Any], view: CycleView, config: tuple[Any, ...]) -> JobContext:
        """A job with problems: Pending with the problems, unless it already runs (then it is not abandoned)."""
        namespace, name, uid = body["metadata"]["namespace"], body["metadata"]["name"], str(body["metadata"]["uid"])
        message = "; ".join(problems)
        if not status.get("memberJob"):
            ctx = JobContext(body, model, policy, (), status)
            ctx.set(phase=JobPhase.PENDING, message=f"not valid: {message}", observedGeneration=ctx.generation)
            if (status.get("message") or "") != f"not valid: {message}":
                ctx.event(JobReason.INVALID, message, warning=True)
            ctx.condition(JobConditionType.VALID, False, JobReason.INVALID_SPEC, message, view.now)
            if not (changed(ctx.status, ctx.patch) or ctx.events):
                self._trim((namespace, name), uid, config)
            return ctx
        # Already running: a later edit cannot be honoured, but the run is not abandoned.
        policy = policy or resolve_policy(model, {}, self.settings.defaults, self.settings.admin_rules)[0]
        ctx = JobContext(body, model, policy, (), status, submitted=self._submitted(model, view))
        ctx.condition(JobConditionType.VALID, False, JobReason.INVALID_SPEC, message, view.now)
        return ctx

    def _unparsable(self, body: dict[str, Any], status: dict[str, Any], exc: ValidationError, view: CycleView,
                    invalid: list[JobContext], config: tuple[Any, ...]) -> None:
        """Accepted by the API server but not by the model (e.g. maxDelay '99999999999h' matches the
        CRD's pattern but overflows): said in status, never dropped silently."""
        meta = body["metadata"]
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())[:1024]
        if (status.get("message") or "") == f"not valid: {message}":
            self._trim((meta["namespace"], meta["name"]), str(meta["uid"]), config)
            return
        log.warning("CarbonAwareJob %s/%s does not parse: %s", meta["namespace"], meta["name"], message)
        ctx = JobContext(body, None, None, (), status)  # type: ignore[arg-type]
        if not status.get("memberJob"):
            ctx.set(phase=JobPhase.PENDING, observedGeneration=ctx.generation)
        ctx.set(message=f"not valid: {message}")
        ctx.condition(JobConditionType.VALID, False, JobReason.INVALID_SPEC, message, view.now)
        ctx.event(JobReason.INVALID, message, warning=True)
        invalid.append(ctx)

    def _trim(self, key: tuple[str, str], uid: str, config: tuple[Any, ...]) -> None:
        """An invalid job whose status already says so is held as text until it or the config changes."""
        self.world.trim_invalid(key, config)
        self._models.pop(uid, None)

    def _parsed(self, uid: str, body: dict[str, Any]) -> CarbonAwareJob:
        """The job's model, parsed again only when its spec changed (a new generation)."""
        generation = (body.get("metadata") or {}).get("generation")
        cached = self._models.get(uid)
        if cached is not None and cached[0] == generation:
            return cached[1]
        model = CarbonAwareJob.model_validate({k: v for k, v in body.items() if k != "status"})
        self._models[uid] = (generation, model)
        return model
