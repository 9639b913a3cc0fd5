"""The example project's URLs plus a few views only the tests need."""

from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.urls import path
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from vigil_example.urls import urlpatterns as example_urlpatterns


def form(request):
    """A plain Django view, CSRF-protected (CsrfViewMiddleware): GET hands
    out the token, POST needs it."""
    return JsonResponse({"csrf": get_token(request), "method": request.method})


class StaffOnlyView(APIView):
    """403 for an authenticated user who is not staff."""

    permission_classes = [permissions.IsAdminUser]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = example_urlpatterns + [
    path("form/", form),
    path("api/staff-only/", StaffOnlyView.as_view()),
]
