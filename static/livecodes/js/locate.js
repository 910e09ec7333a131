// "By location" codes: with the visitor's consent, reload with their coordinates to find the nearest place.
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("lc-locate");
  if (!button || !navigator.geolocation) return;
  button.addEventListener("click", () => {
    navigator.geolocation.getCurrentPosition((pos) => {
      const url = new URL(window.location.href);
      url.searchParams.set("lat", pos.coords.latitude.toFixed(4));
      url.searchParams.set("lng", pos.coords.longitude.toFixed(4));
      window.location.replace(url.toString());
    });
  });
});
