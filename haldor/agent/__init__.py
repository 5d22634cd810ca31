"""The agent's runtime: the process that wires the brain (:mod:`haldor.access`) to its
hardware, the broker, the schedule worker, the screen and the timers, and runs its one
decision loop. Import the parts from their modules (``haldor.agent.run``, ...): this
package imports nothing by itself, so the schedule worker's child stays small."""
