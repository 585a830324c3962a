"""Control: actuators, scenarios as data, the scenario runner, redlines, interlocks, audit,
the system mode, control authority and watchdogs.

- :mod:`~rigwatch.control.actuators`: capabilities (``set`` -> :class:`Status`, ``read``,
  ``stop``), actuator specs and their commanded/acknowledged state;
- :mod:`~rigwatch.control.backends`: STM32 valve bank, Arduino step motors, GPIO valves, S7;
- :mod:`~rigwatch.control.commander`: the one path of every command (validation, interlocks,
  dispatch, audit);
- :mod:`~rigwatch.control.scenarios`, :mod:`~rigwatch.control.runner`: sequences as data and
  the runner with its transition table;
- :mod:`~rigwatch.control.redlines`, :mod:`~rigwatch.control.interlocks`,
  :mod:`~rigwatch.control.audit`;
- :mod:`~rigwatch.control.system_mode`, :mod:`~rigwatch.control.authority`: ``system_mode``
  words mapped onto the runner; which client may command;
- :mod:`~rigwatch.control.service`, :mod:`~rigwatch.control.watchdogs`: a station's control
  part assembled from ``[control]`` with its control thread; the watchdogs it runs.
"""
