"""URL configuration: the home page, the publications app and the admin."""

from django.contrib import admin
from django.urls import include, path
from publications import views

urlpatterns = [
    path("", views.home, name="home"),
    path("publications/", include("publications.urls")),
    path("admin/", admin.site.urls),
]
