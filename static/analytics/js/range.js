// The date-range form of the analytics pages: typing a date switches the period to "custom range", so that the
// dates are not silently overridden by the preset. Without JavaScript the operator picks "custom range" by hand.
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    const input = event.target;
    if (!input.matches || !input.matches("form.analytics-range input[type=date]")) {
      return;
    }
    const preset = input.form.querySelector("select[name=range]");
    if (preset) {
      preset.value = "custom";
    }
  });
})();
