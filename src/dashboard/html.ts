/**
 * The one place where text becomes HTML: the `html` tagged template escapes every interpolated
 * value unless it is already {@link Html} (built by `html` itself, or marked with {@link safe}).
 * Every value read from the bucket reaches a page through it.
 *
 * @module
 */

/** A piece of markup that is already safe to send: it is inserted as is. */
export class Html {
  /** The markup. */
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** `text` with `& < > " '` escaped, safe in element content and in quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** What may be interpolated: text (escaped), numbers, markup, nothing, or lists of these. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.value;
  if (value === null || value === undefined || value === false) return "";
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/**
 * Build markup: the literal parts are kept, every interpolation is escaped unless it is
 * {@link Html}; arrays are joined, `null`, `undefined` and `false` render as nothing.
 */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Mark markup built elsewhere (never text from the bucket) as safe to insert as is. */
export function safe(markup: string): Html {
  return new Html(markup);
}
