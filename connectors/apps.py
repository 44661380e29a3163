from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"

    def ready(self) -> None:
        """Connector steps in this process (a worker, the web, a command) call tenants'
        connections; a name without one goes to the loopback partner at
        `BATON_CONNECTOR_HTTP_URL`, or else to the engine's in-process fake."""
        from connectors.outbound import ConnectionPort, port_from_settings
        from workflows.engine import FakeConnector, connector_port, connector_port_set

        current = connector_port()
        base = current.fallback if isinstance(current, ConnectionPort) else current
        if not isinstance(base, FakeConnector):  # a loopback partner from an earlier start: the setting decides again
            base = FakeConnector()
        connector_port_set(port_from_settings(fallback=base))
