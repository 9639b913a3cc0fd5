"""A URLconf that routes simplejwt's stock login view (for
tests/test_checks.py)."""

from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView

from vigil_django.views import VigilTokenRefreshView, VigilTokenVerifyView

urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", VigilTokenRefreshView.as_view()),
    path("api/token/verify/", VigilTokenVerifyView.as_view()),
]
