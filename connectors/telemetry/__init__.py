"""MQTT telemetry: trailers' and shipments' positions and temperatures, kept as their latest
state, with threshold rules that raise canonical events into the inbox.

- `readings`: one MQTT message, as a subscription's payload format reads it (pure, no database);
- `services`: subscriptions and rules (audited), a message applied to its asset's latest state,
  and the rules evaluated – an excursion opens once, raises one inbox event, clears when back in
  range (or when the silent asset speaks again);
- `selectors`: the latest state per trailer or shipment, and what the listener should connect to;
- `listener`: `manage.py mqtt_listen`, one process per installation holding a paho client per
  tenant connection, feeding every message through one database thread.
"""
