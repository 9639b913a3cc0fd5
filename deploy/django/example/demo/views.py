import itertools
import threading

from django.http import JsonResponse
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView


def healthz(request):
    return JsonResponse({"status": "ok"})


def forbidden(request):
    return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)


class MeView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request):
        u = request.user
        return Response({"id": u.pk, "username": u.get_username()})


_orders = []
_orders_lock = threading.Lock()
_ids = itertools.count(1)


class OrdersView(APIView):
    """In-memory orders: GET lists, POST creates (for read-only lockdowns)."""

    def get(self, request):
        with _orders_lock:
            return Response(list(_orders))

    def post(self, request):
        item = request.data.get("item", "") if hasattr(request.data, "get") else ""
        with _orders_lock:
            order = {"id": next(_ids), "item": str(item)[:200]}
            _orders.append(order)
        return Response(order, status=201)


class LimitedView(APIView):
    """Throttled by the "limited" scope (VIGIL_EXAMPLE_LIMITED_RATE): its 429s
    become auth.throttled events."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "limited"

    def get(self, request):
        return Response({"ok": True})
