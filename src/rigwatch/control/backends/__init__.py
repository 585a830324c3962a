"""Actuator backends: one transport each, every one with a way to run without hardware.

- :mod:`.stm32_valves`: the STM32 valve bank (``Valves:<9 bits>``), sharing the port of the
  ``stm32`` acquisition driver; the firmware emulator on a pty stands in for the board;
- :mod:`.arduino_motors`: step motors (``motor_id:angle``), the Arduino emulator on a pty;
- :mod:`.gpio_valves`: Raspberry Pi GPIO through gpiozero (pigpio, lgpio, ``MockFactory``);
  :mod:`.pi_valves`: the same valves on a Pi chosen at run time (the ball mill's ``/connect``);
- :mod:`.s7`: Siemens S7 bits and words through python-snap7 (its server in tests and for
  ``--simulate``).

:func:`~rigwatch.control.backends.build.build_backend` turns a config entry into a backend.
"""
