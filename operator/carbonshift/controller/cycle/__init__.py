"""The scheduling cycle, one module per step (docs/operator.md, "The scheduling cycle"):

- ``scheduler`` — the loop: observe -> admit -> plan -> act, writes as tasks beside it;
- ``observe`` — members probed, signals read, member Jobs from their watched views (``context.CycleView``);
- ``memberstatus`` — what was observed, written to each MemberCluster's status;
- ``admit`` — jobs parsed and validated into ``context.JobContext``s; invalid ones say why;
- ``plan`` — pure: all waiting jobs planned together, hysteresis, deadline risk, stale signals;
- ``timing`` — pure: due or not, green windows, whether suspended work should move;
- ``start`` — due jobs get their member Job (created or adopted);
- ``unconfirmed`` — pure: a create that got no answer keeps the job waiting for that cluster;
- ``follow`` — dispatched jobs mirrored from their member Job: windows, relocation, loss;
- ``finish`` — the end of a run: emissions, the record, then the member Job let go.

Member-cluster access (``memberjobs``, ``members``, ``kube``) and garbage collection
(``cleanup``) live beside this package, not in it.
"""

from carbonshift.controller.cycle.scheduler import Scheduler

__all__ = ["Scheduler"]
