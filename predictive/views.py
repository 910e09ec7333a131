from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from predictive import selectors
from scrm.access import logged_in, operators_only


@operators_only
@require_GET
def model_overview(request: HttpRequest) -> HttpResponse:
    return render(request, "predictive/overview.html",
                  {"section": "predictive", "overview": selectors.predictive_overview()})


@logged_in
@require_GET
def contact_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The "预测" panel of a contact page (htmx partial): 404 when the user may not see the contact."""
    prediction = selectors.contact_prediction_for_user(user=request.user, contact_id=pk)
    return render(request, "predictive/partials/_contact_panel.html", {"prediction": prediction})
