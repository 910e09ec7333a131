from django.urls import path

from livecodes import views

app_name = "livecodes"
urlpatterns = [
    # Public: the permanent URL printed as the QR, and the images its page shows.
    path("l/<slug:slug>", views.landing, name="landing"),
    path("l/<slug:slug>/banner", views.banner, name="banner"),
    path("l/<slug:slug>/qr/<int:target_id>.img", views.target_image, name="target_image"),
    # Operators.
    path("livecodes/", views.code_list, name="list"),
    path("livecodes/new/", views.code_create, name="create"),
    path("livecodes/<int:pk>/", views.code_detail, name="detail"),
    path("livecodes/<int:pk>/edit/", views.code_edit, name="edit"),
    path("livecodes/<int:pk>/publish/", views.code_publish, name="publish"),
    path("livecodes/<int:pk>/stats/", views.code_stats, name="stats"),
    path("livecodes/<int:pk>/qr.<str:fmt>", views.code_qr, name="qr"),
    path("livecodes/<int:pk>/pool/staff/", views.pool_add_staff, name="pool_add_staff"),
    path("livecodes/<int:pk>/pool/group/", views.pool_add_group, name="pool_add_group"),
    path("livecodes/<int:pk>/pool/upload/", views.pool_upload, name="pool_upload"),
    path("livecodes/<int:pk>/pool/<int:target_id>/", views.target_edit, name="target_edit"),
    path("livecodes/<int:pk>/pool/<int:target_id>/replace/", views.target_replace, name="target_replace"),
    path("livecodes/<int:pk>/options/", views.option_add, name="option_add"),
    path("livecodes/<int:pk>/welcome/<int:image_id>.img", views.welcome_image, name="welcome_image"),
    path("livecodes/<int:pk>/welcome/miniprogram/<int:miniprogram_id>.img", views.welcome_miniprogram_cover,
         name="welcome_miniprogram_cover"),
]
