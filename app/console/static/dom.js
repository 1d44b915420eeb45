// A tiny element builder and the few widgets every panel uses.

let counter = 0;
export const uid = (prefix = "c") => `${prefix}-${++counter}`;

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") value = v;
    else if (k === "checked" || k === "selected" || k === "multiple") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  if (value !== undefined) el.value = value;
  return el;
}

export const fmt = (n) => (n == null ? "—" : Number(n).toLocaleString("en-US"));

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

export function field(label, control, extra = {}) {
  if (!control.id) control.id = uid("f");
  return h("div", { class: `field ${extra.class || ""}` }, h("label", { for: control.id }, label), control);
}

export function select(options, value, attrs = {}) {
  return h(
    "select",
    { ...attrs, value },
    options.map((o) => (Array.isArray(o) ? h("option", { value: o[0] }, o[1]) : h("option", { value: o }, o))),
  );
}

// Values as removable chips, typed into an input with suggestions (a datalist).
// suggest(prefix) answers [{value, hint}]; free text is accepted too (the server says
// when a name does not exist, at its row).
export function chips({ label, values, onChange, suggest, id, placeholder }) {
  const listId = uid("dl");
  const list = h("datalist", { id: listId });
  const box = h("span", { class: "chip-list" });
  const input = h("input", {
    id: id || uid("chips"),
    list: listId,
    "aria-label": label,
    placeholder: placeholder || "type, Enter to add",
    autocomplete: "off",
  });
  const render = () => {
    box.replaceChildren(
      ...values.map((v, i) =>
        h(
          "span",
          { class: "chip" },
          v,
          h(
            "button",
            {
              type: "button",
              class: "chip-x",
              "aria-label": `Remove ${v}`,
              onclick: () => {
                values.splice(i, 1);
                render();
                onChange(values);
                input.focus();
              },
            },
            "×",
          ),
        ),
      ),
    );
  };
  const add = () => {
    const v = input.value.trim().replace(/,$/, "").trim();
    input.value = "";
    if (v && !values.some((x) => x.toLowerCase() === v.toLowerCase())) {
      values.push(v);
      render();
      onChange(values);
    }
  };
  const refresh = debounce(async () => {
    if (!suggest) return;
    try {
      const items = await suggest(input.value.trim());
      list.replaceChildren(...items.map((s) => h("option", { value: s.value }, s.hint || "")));
    } catch {
      /* suggestions are a help, not a must */
    }
  }, 150);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === ",") {
      if (input.value.trim()) {
        e.preventDefault();
        add();
      } else if (e.key === "Enter") e.preventDefault();
    } else if (e.key === "Backspace" && !input.value && values.length) {
      values.pop();
      render();
      onChange(values);
    }
  });
  input.addEventListener("input", (e) => {
    if (e.inputType === "insertReplacementText" || e.inputType === undefined) add();
    else refresh();
  });
  input.addEventListener("focus", refresh);
  input.addEventListener("blur", () => input.value.trim() && add());
  render();
  return h("span", { class: "chips" }, box, input, list);
}

const dialog = () => document.getElementById("confirm");

// A modal question; resolves true when confirmed.
export function confirmDialog(title, body, okLabel) {
  const d = dialog();
  d.querySelector("#confirm-title").textContent = title;
  d.querySelector("#confirm-body").replaceChildren(...[body].flat());
  d.querySelector("#confirm-ok").textContent = okLabel;
  d.returnValue = "";
  d.showModal();
  d.querySelector("#confirm-ok").focus();
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
  });
}

export function errorText(error) {
  if (!error) return "";
  const where = (error.details || []).filter((d) => d.path && d.path !== "body");
  return error.message + (where.length > 1 ? ` (+${where.length - 1} more)` : "");
}
