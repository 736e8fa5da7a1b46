"""Version of the simulator's output for a given seed and IAPs."""

#: Bumped whenever anatomy or acquisition output changes for the same seed and IAPs; datasets
#: record it so that regenerating a patient from its seeds can be checked.
SIMULATOR_VERSION = 2
