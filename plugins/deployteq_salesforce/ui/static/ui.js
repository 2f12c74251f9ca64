// The Salesforce pages need no JavaScript to work; this only makes two things nicer.
(() => {
  // Links to Airflow's own pages (a DAG run, a task log) open in Airflow itself, not inside its frame
  // around this page (the frame may not navigate the top window, but Airflow's router follows history).
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-airflow-link]");
    if (!link || window.top === window || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    try {
      window.top.history.pushState(null, "", link.href);
      window.top.dispatchEvent(new PopStateEvent("popstate", { state: null }));
      event.preventDefault();
    } catch (error) {
      // a frame of another origin: the link opens here
    }
  });
  // "Select every record on this page" on the errors page
  document.addEventListener("change", (event) => {
    if (event.target.id !== "select-all") return;
    for (const box of document.querySelectorAll('input[name="error_id"]')) box.checked = event.target.checked;
  });
})();
