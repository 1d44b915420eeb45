// What the selection gives: the exact count (live, newest answer wins), a preview table
// with paging and chosen columns, and an export download.
import { ApiError, download, post } from "./api.js";
import { chips, field, fmt, h, select } from "./dom.js";

// Live count: debounced; each request aborts the one before, and an answer is shown only if
// it belongs to the latest request (a sequence number), so an older selection's total never
// replaces a newer one's. "counting…" appears when an answer takes a while.
export class Counter {
  constructor(el, { onResult, onError }) {
    this.el = el;
    this.onResult = onResult;
    this.onError = onError;
    this.seq = 0;
    this.controller = null;
    this.seen = null; // {total, key}: the last total shown, and the spec it counted
    this.number = h("output", { class: "count", id: "count", "aria-live": "polite" }, "—");
    this.status = h("p", { class: "count-status", id: "count-status", role: "status" });
    el.append(h("h2", { id: "count-title" }, "Selected contacts"), this.number, this.status);
    this.timer = null;
  }

  schedule(spec) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(spec), 250);
  }

  async run(spec) {
    const seq = ++this.seq;
    if (this.controller) this.controller.abort();
    const controller = (this.controller = new AbortController());
    const key = JSON.stringify(spec);
    const slow = setTimeout(() => {
      if (seq === this.seq) {
        this.el.classList.add("busy");
        this.status.textContent = "counting…";
      }
    }, 300);
    try {
      const { total } = await post("/v1/selections/count", spec, { signal: controller.signal });
      if (seq !== this.seq) return;
      this.seen = { total, key };
      this.number.textContent = fmt(total);
      this.number.dataset.total = String(total);
      this.number.dataset.spec = key; // what was counted: tests and tools read it
      this.status.textContent = "exact, just now";
      this.el.classList.remove("invalid");
      this.onResult(total);
    } catch (error) {
      if (seq !== this.seq || error.name === "AbortError") return;
      this.seen = null;
      this.number.textContent = "—";
      delete this.number.dataset.total;
      delete this.number.dataset.spec;
      this.el.classList.add("invalid");
      this.status.textContent = error instanceof ApiError ? error.message : `cannot count: ${error.message}`;
      this.onError(error);
    } finally {
      clearTimeout(slow);
      if (seq === this.seq) this.el.classList.remove("busy");
    }
  }
}

export class Preview {
  constructor(el, catalog, getSpec, onError) {
    this.el = el;
    this.getSpec = getSpec;
    this.onError = onError;
    this.columns = ["id", "email", "first_name", "last_name", "city", "score", "tags"];
    this.fields = catalog.contact_fields;
    this.limit = 20;
    this.pages = [null]; // the `after` of each page seen, for going back
    this.table = h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Preview of selected contacts" });
    this.info = h("span", { class: "hint", role: "status" });
    this.prev = h("button", { type: "button", id: "preview-prev", onclick: () => this.go(-1) }, "‹ Previous");
    this.next = h("button", { type: "button", id: "preview-next", onclick: () => this.go(1) }, "Next ›");
    const columns = h(
      "details",
      { class: "columns" },
      h("summary", {}, "Columns"),
      h(
        "div",
        { class: "column-list" },
        this.fields.map((f) =>
          h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              checked: this.columns.includes(f),
              onchange: (e) => {
                this.columns = e.target.checked ? this.fields.filter((x) => x === f || this.columns.includes(x)) : this.columns.filter((x) => x !== f);
                this.load();
              },
            }),
            f,
          ),
        ),
      ),
    );
    const limit = select(["10", "20", "50", "100"], "20", {
      id: "preview-limit",
      onchange: (e) => {
        this.limit = Number(e.target.value);
        this.reset();
      },
    });
    el.append(
      h("div", { class: "card-head" }, h("h2", {}, "Preview"), h("div", { class: "tools" }, columns, field("Rows", limit, { class: "inline-field" }))),
      this.table,
      h("div", { class: "pager" }, this.prev, this.info, this.next),
    );
    this.page = 0;
  }

  reset() {
    this.pages = [null];
    this.page = 0;
    this.load();
  }

  go(step) {
    this.page = Math.max(0, this.page + step);
    this.load();
  }

  async load() {
    const seq = (this.seq = (this.seq || 0) + 1);
    const body = { selection: this.getSpec(), limit: this.limit, fields: this.columns };
    const after = this.pages[this.page];
    if (after != null) body.after = after;
    try {
      const answer = await post("/v1/selections/preview", body);
      if (seq !== this.seq) return;
      this.pages[this.page + 1] = answer.next_after;
      this.draw(answer);
    } catch (error) {
      if (seq !== this.seq) return;
      this.table.replaceChildren(h("p", { class: "hint" }, "No preview: ", error.message));
      this.onError(error, "selection.");
    }
  }

  draw(answer) {
    const cell = (v) =>
      v == null ? "" : Array.isArray(v) ? v.join("; ") : typeof v === "object" ? Object.entries(v).map(([k, x]) => `${k}: ${x}`).join("; ") : String(v);
    this.table.replaceChildren(
      h(
        "table",
        { id: "preview-table" },
        h("caption", { class: "sr-only" }, "Selected contacts"),
        h("thead", {}, h("tr", {}, this.columns.map((c) => h("th", { scope: "col" }, c.replaceAll("_", " "))))),
        h(
          "tbody",
          {},
          answer.contacts.length
            ? answer.contacts.map((c) => h("tr", {}, this.columns.map((col) => h("td", {}, cell(c[col])))))
            : h("tr", {}, h("td", { colspan: this.columns.length, class: "hint" }, "Nobody is selected.")),
        ),
      ),
    );
    const first = this.page * this.limit + 1;
    const last = this.page * this.limit + answer.contacts.length;
    this.info.textContent = answer.contacts.length ? `${fmt(first)}–${fmt(last)} of ${fmt(answer.total)}` : `0 of ${fmt(answer.total)}`;
    this.prev.disabled = this.page === 0;
    this.next.disabled = answer.next_after == null;
  }
}

export function exportCard(el, getSpec, onError) {
  const fields = ["id", "email", "first_name", "last_name", "tags"];
  const format = select(
    [
      ["csv", "CSV"],
      ["ndjson", "NDJSON"],
    ],
    "csv",
    { id: "export-format" },
  );
  const status = h("p", { class: "hint", id: "export-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      id: "export",
      onclick: async () => {
        button.disabled = true;
        status.textContent = "exporting…";
        try {
          const body = { selection: getSpec(), fields, format: format.value };
          const got = await download("POST", "/v1/selections/export", body, `audience-export.${format.value}`);
          status.textContent = `Downloaded ${got.name} (${fmt(got.size)} bytes).`;
          status.dataset.size = String(got.size);
        } catch (error) {
          status.textContent = error.message;
          onError(error, "selection.");
        } finally {
          button.disabled = false;
        }
      },
    },
    "Export",
  );
  el.append(
    h("h2", {}, "Export"),
    field("Format", format),
    h("div", { class: "field" }, h("span", { class: "label" }, "Fields"), chips({ id: "export-fields", label: "Export fields", values: fields, onChange: () => {}, placeholder: "field, detail:NAME…" })),
    button,
    status,
  );
}
