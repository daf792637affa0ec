"""Names of the fault-injection hooks, environment variables a test or a demo sets on purpose.

Kept apart from `jetx.training.callbacks.fault_injection` (which needs Keras) so that the flow's
tasks can pass them on to a stage's child process without loading TensorFlow.
"""

#: "stage:update[,stage:update]": raise an out-of-memory error at those optimizer updates.
OOM_ENV = "JETX_INJECT_OOM"
#: seconds to sleep after each micro-step, so that a test can kill a run mid-epoch.
DELAY_ENV = "JETX_STEP_DELAY"
