/**
 * The escaping template: every interpolation is escaped unless it is markup built by the
 * template itself or marked safe.
 */
import { describe, expect, it } from "vitest";
import { escapeHtml, html, safe } from "../../src/dashboard/html.ts";

describe("the html template", () => {
  it("escapes interpolated text, in content and in attributes", () => {
    const evil = `<script>alert("x")</script>&'`;
    expect(html`<p title="${evil}">${evil}</p>`.value).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</p>',
    );
    expect(escapeHtml("a<b")).toBe("a&lt;b");
  });

  it("inserts nested markup and safe markup as is, joins lists, drops null, undefined and false", () => {
    const inner = html`<b>${"<i>"}</b>`;
    expect(
      html`${inner}${safe("<hr>")}${[html`<li>1</li>`, "<2>"]}${null}${undefined}${false}${0}`
        .value,
    ).toBe("<b>&lt;i&gt;</b><hr><li>1</li>&lt;2&gt;0");
  });
});
