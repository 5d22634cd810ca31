/* The fleet's page follows the store: /live says when it changed, and <main> (with the
   heading, the time and the broker banner) is swapped for a fresh one; a form being
   filled in elsewhere on the page is left alone. A lockdown is asked for twice. */
(function () {
  let busy = false;
  const source = new EventSource("/live");
  source.onmessage = async (message) => {
    if (busy || message.data === document.body.dataset.generation) return;
    busy = true;
    try {
      const reply = await fetch(location.href, {cache: "no-store"});
      if (!reply.ok) return;
      const fresh = new DOMParser().parseFromString(await reply.text(), "text/html");
      for (const id of ["main", "heading", "updated", "blind"]) {
        const old = document.getElementById(id), now = fresh.getElementById(id);
        if (old && now) old.replaceWith(now);
      }
      document.body.dataset.generation = fresh.body.dataset.generation;
    } catch (error) {
      /* the next change tries again */
    } finally {
      busy = false;
    }
  };
  document.addEventListener("click", (click) => {
    const button = click.target.closest("button[data-ask]");
    if (button && !window.confirm(button.dataset.ask)) click.preventDefault();
  });
})();
