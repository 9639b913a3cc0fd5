from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset) the demo user: alice / password by default. Prints its id."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="alice")
        parser.add_argument("--password", default="password")
        parser.add_argument("--staff", action="store_true", help="make the user staff and superuser")

    def handle(self, *args, username, password, staff, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(**{User.USERNAME_FIELD: username})
        user.set_password(password)
        user.is_active = True
        if staff:
            user.is_staff = user.is_superuser = True
        user.save()
        self.stdout.write(f"{'created' if created else 'updated'} user {username} id={user.pk}")
