"""The reporter's handlers: CSV + plot, OPC-UA, MQTT and the fleet (through the agent's
outbox). Each delivers one :class:`~.records.ReportRecord` at a time and says what it
delivered; the reporter keeps a ledger of deliveries so a retried or redone item is not
delivered twice by a handler that already took it."""
