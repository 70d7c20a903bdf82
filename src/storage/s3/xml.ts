/**
 * A deliberately small XML reader and writer for the fixed shapes of S3 requests and responses.
 *
 * @module
 */

/** One element of a parsed XML document: its local name, child elements and decoded text. */
export interface XmlElement {
  /** Element name without any namespace prefix. */
  name: string;
  /** Child elements in document order. */
  children: XmlElement[];
  /** Concatenated character data directly inside this element, entities decoded. */
  text: string;
}

/**
 * A deliberately small XML reader for the fixed shapes of S3 responses: elements, text,
 * attributes (skipped), the five predefined entities, numeric character references, CDATA,
 * comments and the XML declaration. DTDs are refused (S3 never sends one; HTML does).
 * Text is kept byte-exact, since object keys may begin or end with spaces.
 *
 * Throws an `Error` on anything malformed; callers map that to a typed error.
 *
 * @internal Exported for tests.
 */
export function parseXml(source: string): XmlElement {
  return new XmlReader(source).read();
}

/**
 * Sticky patterns, matched where the reader stands (`lastIndex`) rather than on a slice of what
 * follows: a 1,000-key listing has 6,000 start tags, and slicing each cost more than reading it.
 */
const START_TAG = /<([A-Za-z_][\w.:-]*)/y;
const ATTRIBUTE = /[A-Za-z_][\w.:-]*\s*=\s*(["'])/y;

/** One pass over a document; `#i` is the read position, reported in every failure. */
class XmlReader {
  readonly #source: string;
  readonly #stack: Array<{ el: XmlElement; raw: string }> = [];
  #root: XmlElement | undefined;
  #i: number;

  constructor(source: string) {
    this.#source = source;
    this.#i = source.charCodeAt(0) === 0xfeff ? 1 : 0;
  }

  read(): XmlElement {
    const source = this.#source;
    const n = source.length;
    while (this.#i < n) {
      const lt = source.indexOf("<", this.#i);
      const end = lt === -1 ? n : lt;
      if (end > this.#i) this.#characters(source.slice(this.#i, end));
      if (lt === -1) break;
      this.#i = lt;
      this.#markup();
    }
    if (this.#stack.length > 0)
      this.#fail(`unclosed <${this.#stack[this.#stack.length - 1]!.raw}>`);
    if (this.#root === undefined) this.#fail("no root element");
    return this.#root!;
  }

  #fail(why: string): never {
    throw new Error(`malformed XML at offset ${this.#i}: ${why}`);
  }

  #top(): { el: XmlElement; raw: string } | undefined {
    return this.#stack[this.#stack.length - 1];
  }

  #characters(raw: string): void {
    const top = this.#top();
    if (top !== undefined) top.el.text += decodeEntities(raw);
    else if (raw.trim() !== "") this.#fail("text outside the root element");
  }

  /** Reads the markup that starts at `<`. */
  #markup(): void {
    const source = this.#source;
    const i = this.#i;
    if (source.startsWith("<?", i)) {
      this.#i = this.#skipPast("?>", i + 2, "unterminated processing instruction");
    } else if (source.startsWith("<!--", i)) {
      this.#i = this.#skipPast("-->", i + 4, "unterminated comment");
    } else if (source.startsWith("<![CDATA[", i)) {
      this.#cdata();
    } else if (source.startsWith("<!", i)) {
      this.#fail("DTDs are not supported");
    } else if (source.startsWith("</", i)) {
      this.#endTag();
    } else {
      this.#startTag();
    }
  }

  /** The position just after the next `terminator` at or after `from`. */
  #skipPast(terminator: string, from: number, why: string): number {
    const close = this.#source.indexOf(terminator, from);
    if (close === -1) this.#fail(why);
    return close + terminator.length;
  }

  #cdata(): void {
    const close = this.#source.indexOf("]]>", this.#i + 9);
    if (close === -1) this.#fail("unterminated CDATA section");
    const top = this.#top();
    if (top === undefined) this.#fail("CDATA outside the root element");
    top!.el.text += this.#source.slice(this.#i + 9, close);
    this.#i = close + 3;
  }

  #endTag(): void {
    const close = this.#source.indexOf(">", this.#i + 2);
    if (close === -1) this.#fail("unterminated end tag");
    const raw = this.#source.slice(this.#i + 2, close).trim();
    const top = this.#stack.pop();
    if (top === undefined || top.raw !== raw) this.#fail(`unexpected </${raw}>`);
    this.#i = close + 1;
    if (this.#stack.length === 0) {
      if (this.#root !== undefined) this.#fail("more than one root element");
      this.#root = top!.el;
    } else this.#stack[this.#stack.length - 1]!.el.children.push(top!.el);
  }

  #startTag(): void {
    START_TAG.lastIndex = this.#i;
    const match = START_TAG.exec(this.#source);
    if (match === null) this.#fail("bad start tag");
    const raw = match![1]!;
    this.#i += match![0].length;
    const selfClosing = this.#attributes();
    const colon = raw.indexOf(":");
    const el: XmlElement = {
      name: colon === -1 ? raw : raw.slice(colon + 1),
      children: [],
      text: "",
    };
    if (selfClosing) {
      const top = this.#top();
      if (top !== undefined) top.el.children.push(el);
      else if (this.#root !== undefined) this.#fail("more than one root element");
      else this.#root = el;
    } else {
      if (this.#stack.length === 0 && this.#root !== undefined) {
        this.#fail("more than one root element");
      }
      this.#stack.push({ el, raw });
    }
  }

  /**
   * Steps over a start tag's attributes to its end; true when it was self-closing. Attributes
   * are skipped, but their quoted values may contain ">" and must be stepped over.
   */
  #attributes(): boolean {
    const source = this.#source;
    const n = source.length;
    for (;;) {
      while (this.#i < n && /\s/.test(source[this.#i]!)) this.#i++;
      if (this.#i >= n) this.#fail("unterminated start tag");
      if (source[this.#i] === ">") {
        this.#i++;
        return false;
      }
      if (source.startsWith("/>", this.#i)) {
        this.#i += 2;
        return true;
      }
      ATTRIBUTE.lastIndex = this.#i;
      const attr = ATTRIBUTE.exec(source);
      if (attr === null) this.#fail("bad attribute");
      const quote = attr![1]!;
      const close = source.indexOf(quote, this.#i + attr![0].length);
      if (close === -1) this.#fail("unterminated attribute value");
      this.#i = close + 1;
    }
  }
}

const ENTITIES: Record<string, string> = {
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
};

/** A reference's name as the pattern `&([^;&\s]{0,12});?` reads it, and the `;` after it. */
const REFERENCE = /&([^;&\s]{0,12})(;?)/y;

/**
 * Decodes the five predefined entities and numeric character references. A loop over the `&`s
 * rather than a `replace` with a callback: every ETag of a listing holds two (`&#34;`), and the
 * callback was a sixth of parsing a 1,000-key page.
 */
export function decodeEntities(text: string): string {
  let amp = text.indexOf("&");
  if (amp === -1) return text;
  let out = "";
  let from = 0;
  while (amp !== -1) {
    REFERENCE.lastIndex = amp;
    const [, name, semicolon] = REFERENCE.exec(text)!;
    if (semicolon === "") throw new Error(`malformed XML: bare "&" in "${text.slice(0, 40)}"`);
    out += text.slice(from, amp) + referenced(name!);
    from = REFERENCE.lastIndex;
    amp = text.indexOf("&", from);
  }
  return out + text.slice(from);
}

/** The character a reference (`lt`, `#34`, `#x22`) stands for. */
function referenced(name: string): string {
  const named = ENTITIES[name];
  if (named !== undefined) return named;
  const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(name);
  if (m !== null) {
    const cp = m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]);
    if (cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
      return String.fromCodePoint(cp);
    }
  }
  throw new Error(`malformed XML: unknown entity "&${name};"`);
}

/** Escapes text for an XML element body; CR must be a reference or parsers turn it into LF. */
export function escapeXml(value: string): string {
  return value.replace(/[&<>"'\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The first child element with that name. */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

/** Every child element with that name, in document order. */
export function children(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** Text of the first child with that name, or "" when absent. */
export function text(el: XmlElement, name: string): string {
  return child(el, name)?.text ?? "";
}

/**
 * Writes an element back as XML: a leaf as its text, anything else as its children (S3's
 * configuration documents have no mixed content and no attributes but the root's namespace,
 * which the caller adds). Parsing and writing a rule keeps every element and value of it.
 */
export function writeXml(el: XmlElement): string {
  const inner =
    el.children.length === 0 ? escapeXml(el.text) : el.children.map((c) => writeXml(c)).join("");
  return `<${el.name}>${inner}</${el.name}>`;
}

/** An element built in code: a leaf with `text`, or a container of `children`. */
export function element(name: string, content: string | XmlElement[]): XmlElement {
  return typeof content === "string"
    ? { name, children: [], text: content }
    : { name, children: content, text: "" };
}
