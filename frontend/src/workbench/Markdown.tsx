/**
 * Markdown from model outputs and guidelines, as React elements: react-markdown
 * never passes raw HTML through (it is dropped, not parsed: `skipHtml`), its URL
 * transform drops javascript: and other unsafe schemes, and rehype-sanitize (the
 * GitHub schema) is a second wall. Images are not fetched (no remote content).
 */
import ReactMarkdown from "react-markdown";
import rehypeSanitize from "rehype-sanitize";

export function Markdown({ source }: { source: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown
        skipHtml
        rehypePlugins={[rehypeSanitize]}
        disallowedElements={["img"]}
        unwrapDisallowed
        components={{
          // An unsafe URL arrives here emptied by the URL transform: show the text, no link.
          a: ({ href, children }) =>
            href ? (
              <a href={href} rel="noopener noreferrer nofollow" target="_blank">
                {children}
              </a>
            ) : (
              <span className="dead-link">{children}</span>
            ),
        }}
      >
        {source}
      </ReactMarkdown>
    </div>
  );
}
