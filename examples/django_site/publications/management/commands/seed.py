"""manage.py seed: sample articles and a superuser, so the site has something to show."""

import os
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from publications.models import Article

PARAGRAPH = (
    "Not all URLs are equal: the home page and the article pages take most of the traffic, "
    "the admin pages are rare but need a lot of memory, and everything else sits in between. "
    "Each kind gets its own daemon group, sized for what it does."
)


class Command(BaseCommand):
    help = (
        "Create sample articles (up to --articles) and a superuser. The username and password "
        "come from --username/--password, else DJANGO_SUPERUSER_USERNAME/"
        "DJANGO_SUPERUSER_PASSWORD, else admin/admin. Running it again is harmless: it tops up "
        "the articles and resets the superuser's password."
    )

    def add_arguments(self, parser):
        parser.add_argument("--articles", type=int, default=50, help="articles to have (50)")
        parser.add_argument("--username", default=os.environ.get("DJANGO_SUPERUSER_USERNAME"))
        parser.add_argument("--password", default=os.environ.get("DJANGO_SUPERUSER_PASSWORD"))
        parser.add_argument(
            "--email", default=os.environ.get("DJANGO_SUPERUSER_EMAIL", "admin@example.com")
        )

    def handle(self, *args, **options):
        have = Article.objects.count()
        now = timezone.now()
        Article.objects.bulk_create(
            Article(
                title=f"Sample article {n}",
                body="\n\n".join([f"Article {n}.", PARAGRAPH, PARAGRAPH]),
                published=now - timedelta(days=n),
            )
            for n in range(have + 1, options["articles"] + 1)
        )
        username = options["username"] or "admin"
        password = options["password"] or "admin"
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is None:
            user = users.objects.create_superuser(username, options["email"], password)
        else:
            user.is_staff = user.is_superuser = user.is_active = True
            user.set_password(password)
            user.save()
        where = "as given" if options["password"] else "'admin', the default"
        self.stdout.write(
            f"{Article.objects.count()} articles; superuser {username!r}, password {where}"
        )
