from django.apps import AppConfig


class LogisticsConfig(AppConfig):
    name = "logistics"

    def ready(self) -> None:
        from logistics import tracking_inbound
        from logistics.actions import register

        register()
        tracking_inbound.register()
