from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"

    def ready(self) -> None:
        """With `BATON_CONNECTOR_HTTP_URL` set, connector steps call it over HTTP in this process
        (a worker, the web, a command) instead of the engine's in-process fake."""
        from connectors.outbound import port_from_settings

        port = port_from_settings()
        if port is not None:
            from workflows.engine import connector_port_set

            connector_port_set(port)
