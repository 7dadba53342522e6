/**
 * Shows that a row scrolls sideways: sets data-more="start", "end" or "both" on the scroller's
 * parent while content is hidden that way (the stylesheet draws a fade and an arrow there), and
 * removes it when everything fits. Touch screens hide scrollbars, so without this a cut-off row
 * looks like all there is.
 */
import { useEffect, useRef } from 'preact/hooks';

export function useScrollHint<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => {
    const el = ref.current;
    const host = el?.parentElement;
    if (!el || !host) return;
    const update = () => {
      const before = el.scrollLeft > 1;
      const after = el.scrollLeft + el.clientWidth < el.scrollWidth - 1;
      const v = before && after ? 'both' : before ? 'start' : after ? 'end' : '';
      if (v) host.setAttribute('data-more', v);
      else host.removeAttribute('data-more');
    };
    update();
    el.addEventListener('scroll', update, { passive: true });
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => {
      el.removeEventListener('scroll', update);
      ro.disconnect();
    };
  }, []);
  return ref;
}
