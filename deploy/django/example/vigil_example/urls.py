from django.urls import path

from demo import views
from rest_framework_simplejwt.views import TokenBlacklistView
from vigil_django.views import VigilTokenObtainPairView, VigilTokenRefreshView, VigilTokenVerifyView

urlpatterns = [
    path("api/token/", VigilTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", VigilTokenRefreshView.as_view(), name="token_refresh"),
    path("api/token/verify/", VigilTokenVerifyView.as_view(), name="token_verify"),
    # Logout: simplejwt's own view, blacklisting the refresh token posted.
    path("api/token/blacklist/", TokenBlacklistView.as_view(), name="token_blacklist"),
    path("api/me/", views.MeView.as_view(), name="me"),
    path("api/orders/", views.OrdersView.as_view(), name="orders"),
    path("api/limited/", views.LimitedView.as_view(), name="limited"),
    path("forbidden/", views.forbidden, name="forbidden"),
    path("healthz", views.healthz, name="healthz"),
]
