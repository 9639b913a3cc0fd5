"""A URLconf routing subclasses of the package's views (for tests/test_checks.py)."""

from django.urls import path

from vigil_django.views import VigilTokenRefreshView, VigilTokenVerifyView


class MyRefreshView(VigilTokenRefreshView):
    pass


urlpatterns = [
    path("refresh/", MyRefreshView.as_view()),
    path("verify/", VigilTokenVerifyView.as_view()),
]
