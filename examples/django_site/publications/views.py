import os

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from publications.models import Article


def served_by(request):
    """Which groupserver group and process served this request (shown in the page footer)."""
    return {"group": request.META.get("groupserver.group", ""), "pid": os.getpid()}


def home(request):
    latest = Article.objects.all()[:5]
    return render(request, "publications/home.html", {"latest": latest, **served_by(request)})


def article_list(request):
    page = Paginator(Article.objects.all(), 20).get_page(request.GET.get("page"))
    return render(request, "publications/article_list.html", {"page": page, **served_by(request)})


def article_detail(request, article_id):
    article = get_object_or_404(Article, pk=article_id)
    context = {"article": article, **served_by(request)}
    return render(request, "publications/article_detail.html", context)
