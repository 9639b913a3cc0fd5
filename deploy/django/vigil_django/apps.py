from django.apps import AppConfig


class VigilConfig(AppConfig):
    name = "vigil_django"
    verbose_name = "Vigil"
    default = True

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        try:
            from django.core.signals import setting_changed
        except ImportError:  # older Django
            from django.test.signals import setting_changed

        from . import checks, conf, events, shipper, state  # noqa: F401 (checks registers itself)

        conf.get()  # validate settings.VIGIL: ImproperlyConfigured names the setting

        user_login_failed.connect(events.on_login_failed, dispatch_uid="vigil_django.login_failed")
        user_logged_in.connect(events.on_logged_in, dispatch_uid="vigil_django.logged_in")

        events.ensure_security_handler()

        def on_setting_changed(setting, **kwargs):
            if setting == "VIGIL":
                conf.reset()
                state.reset()
                shipper.reset()

        setting_changed.connect(on_setting_changed, weak=False, dispatch_uid="vigil_django.setting_changed")
