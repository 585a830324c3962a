"""Emulators of the stations' hardware, for tests, demos and working without the machines.

- :mod:`rigwatch.devices.emulators.stm32`: the test stand's STM32 board on a pseudo-terminal
  (``python -m rigwatch.devices.emulators.stm32 --rate 100`` prints the tty to configure).

Submodules are not imported here, so that ``python -m`` runs them without a double import.
"""
