"""Trace-driven simulation of carbonshift's planner: the engine behind ``carbonshift simulate``.

It replays real carbon-intensity traces, generates a workload, lets the decision core plan every
job on a (noisy) forecast, and evaluates plans, the no-shifting baseline and the perfect-foresight
oracle (the same planner fed actual values) on the actual intensities.
"""
