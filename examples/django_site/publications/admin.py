import csv
import io
from itertools import cycle

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone

from publications.models import Article


def build_export(pad_mb: int) -> bytes:
    """Every article as CSV, built in memory and repeated up to pad_mb MiB.

    This is the memory-hungry admin page of the example: a real export of a large site would
    hold this much at once, so the padding stands in for a big database. The whole blob (and its
    intermediate copies: the StringIO buffer, its str value, the encoded bytes) lives in the admin
    worker for the duration of the request.
    """
    articles = [
        [a.pk, a.title, a.published.isoformat(), a.body] for a in Article.objects.order_by("pk")
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["copy", "id", "title", "published", "body"])
    limit = pad_mb * 1024 * 1024
    if articles:
        for n, row in enumerate(cycle(articles)):
            writer.writerow([n // len(articles), *row])
            if n % len(articles) == len(articles) - 1 and buffer.tell() >= limit:
                break
    return buffer.getvalue().encode("utf-8")


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "published"]
    search_fields = ["title", "body"]
    date_hierarchy = "published"

    def get_urls(self):
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="publications_article_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request):
        """GET /admin/publications/article/export/: all articles as one CSV download."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = build_export(settings.EXPORT_PAD_MB)
        response = HttpResponse(data, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="articles-{stamp}.csv"'
        return response
