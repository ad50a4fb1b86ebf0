// Small touches for the server-rendered pages: times in the reader's own time zone.
(function () {
  "use strict";
  document.querySelectorAll("time.local-time").forEach((t) => {
    const when = new Date(t.dateTime);
    if (!isNaN(when)) {
      t.textContent = when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      t.title = when.toString();
    }
  });
})();
