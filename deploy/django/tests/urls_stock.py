"""A URLconf that routes simplejwt's stock refresh and verify views (for
tests/test_checks.py)."""

from django.urls import include, path
from rest_framework_simplejwt.views import TokenBlacklistView, TokenRefreshView, TokenVerifyView

from vigil_django.views import VigilTokenObtainPairView

auth_patterns = [
    path("refresh/", TokenRefreshView.as_view()),
    path("verify/", TokenVerifyView.as_view()),
]

urlpatterns = [
    path("api/token/", VigilTokenObtainPairView.as_view()),
    path("api/token/blacklist/", TokenBlacklistView.as_view()),
    path("api/auth/", include(auth_patterns)),
]
