from django.urls import path

from publications import views

urlpatterns = [
    path("", views.article_list, name="article_list"),
    path("article/<int:article_id>/", views.article_detail, name="article_detail"),
]
