"""vigil_django's system checks: simplejwt's stock login, refresh and
verify views routed instead of the package's (vigil_django.W001-W003), and
settings that switch part of the integration off (W004-W006)."""

from django.core import checks
from django.core.management import call_command

from vigil_django.checks import check_settings, check_token_views


def ids(messages):
    return [(m.id, m.obj) for m in messages]


def test_the_example_urlconf_passes():
    assert check_token_views() == []


def test_stock_refresh_and_verify_views_are_warned_about(settings):
    settings.ROOT_URLCONF = "tests.urls_stock"
    found = check_token_views()
    assert ids(found) == [("vigil_django.W001", "api/auth/refresh/"), ("vigil_django.W002", "api/auth/verify/")]
    assert all(m.level == checks.WARNING for m in found)
    assert "VigilTokenRefreshView" in found[0].msg and "auth.token_reuse" in found[0].hint


def test_the_check_is_registered(settings):
    settings.ROOT_URLCONF = "tests.urls_stock"
    found = [m for m in checks.run_checks(tags=[checks.Tags.urls]) if m.id.startswith("vigil_django.")]
    assert [m.id for m in found] == ["vigil_django.W001", "vigil_django.W002"]


def test_manage_py_check_shows_it_and_it_can_be_silenced(settings, capsys):
    settings.ROOT_URLCONF = "tests.urls_stock"
    call_command("check")
    err = capsys.readouterr().err
    assert "vigil_django.W001" in err and "vigil_django.W002" in err
    settings.SILENCED_SYSTEM_CHECKS = ["vigil_django.W001", "vigil_django.W002"]
    call_command("check")
    assert "vigil_django.W" not in capsys.readouterr().err


def test_a_subclass_of_the_package_views_is_fine(settings):
    settings.ROOT_URLCONF = "tests.urls_subclass"
    assert check_token_views() == []


def test_a_broken_urlconf_is_left_to_django(settings):
    settings.ROOT_URLCONF = "tests.no_such_urlconf"
    assert check_token_views() == []


def test_stock_token_obtain_view_is_warned_about(settings):
    settings.ROOT_URLCONF = "tests.urls_stock_obtain"
    assert ids(check_token_views()) == [("vigil_django.W003", "api/token/")]


def settings_ids(settings):
    return [m.id for m in check_settings()]


def test_the_example_settings_pass(settings):
    assert settings_ids(settings) == []


def test_middleware_left_out_is_warned_about(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "vigil_django" not in m]
    assert settings_ids(settings) == ["vigil_django.W004"]


def test_stock_jwt_authentication_is_warned_about(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    }
    assert settings_ids(settings) == ["vigil_django.W005"]


def test_stock_jwt_authentication_ahead_of_vigils_is_warned_about(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.SessionAuthentication",
            "rest_framework_simplejwt.authentication.JWTAuthentication",
            "vigil_django.authentication.VigilJWTAuthentication",
        ],
    }
    found = check_settings()
    assert [m.id for m in found] == ["vigil_django.W005"]
    assert "comes before VigilJWTAuthentication" in found[0].msg


def test_stock_jwt_authentication_after_vigils_is_not_warned_about(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "vigil_django.authentication.VigilJWTAuthentication",
            "rest_framework_simplejwt.authentication.JWTAuthentication",
        ],
    }
    assert settings_ids(settings) == []


def test_rotation_is_not_asked_for_without_jwt_authentication(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    }
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ROTATE_REFRESH_TOKENS": False}
    assert settings_ids(settings) == []


def test_no_rotation_or_blacklist_is_warned_about(settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "BLACKLIST_AFTER_ROTATION": False}
    found = check_settings()
    assert [m.id for m in found] == ["vigil_django.W006"]
    assert "BLACKLIST_AFTER_ROTATION" in found[0].msg and "token_reuse" in found[0].hint


def test_middleware_without_the_app_is_improperly_configured(settings):
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    from vigil_django.middleware import VigilMiddleware

    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "vigil_django"]
    with pytest.raises(ImproperlyConfigured, match="INSTALLED_APPS: add 'vigil_django'"):
        VigilMiddleware(lambda request: None)
