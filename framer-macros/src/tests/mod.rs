//! Expansion snapshots, one per grammar feature (review changes with `cargo insta review`, or
//! rerun with `INSTA_UPDATE=always` and read the diff).

use proc_macro2::TokenStream;
use quote::quote;

/// Formats generated items like rustfmt would.
fn pretty(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(e) => format!("/* not a file: {e} */\n{tokens}"),
    }
}

/// The derive's output for a struct as `#[framer(args)]` hands it over.
fn derive(item: TokenStream) -> String {
    pretty(crate::derive::expand(item))
}

/// What `#[framer_forward]` finally generates: the bridge expansion with the struct's markers.
fn forward(model: TokenStream, item: TokenStream) -> String {
    let input: syn::DeriveInput = syn::parse2(model).expect("test model parses");
    let spec = crate::derive::spec(&input);
    pretty(crate::forward::expand_bridge(quote!(#spec #item)))
}

fn dit() -> TokenStream {
    quote! {
        #[framer(__container(readout = early_exit(temb, height, width)))]
        pub struct Dit<B: Backend> {
            patch_embed: PatchEmbed<B>,
            #[framer(student, tap = .1)]
            transformer_blocks: Vec<JointTransformerBlock<B>>,
            norm_out: AdaLayerNorm<B>,
            proj_out: Linear<B>,
        }
    }
}

fn unet() -> TokenStream {
    quote! {
        #[framer(__container(heads = conv1x1))]
        pub struct UNet<B: Backend> {
            conv_in: Conv2d<B>,
            #[framer(student, tap = .0)]
            down_blocks: Vec<DownBlock<B>>,
            #[framer(student)]
            mid_block: MidBlock<B>,
            #[framer(student)]
            up_blocks: Vec<UpBlock<B>>,
            conv_out: Conv2d<B>,
        }
    }
}

fn stack() -> TokenStream {
    quote! {
        pub struct Stack<B: Backend, const N: usize> where Layer<B>: Debug {
            #[framer(student, indices = [0, 2])]
            layers: [Layer<B>; 4],
            #[framer(teacher)]
            last: Layer<B>,
        }
    }
}

#[test]
fn struct_attribute_delegates_to_the_hidden_derive() {
    let out = crate::structure::expand(
        quote!(readout = early_exit(temb)),
        quote! {
            #[derive(Module, Debug)]
            pub struct Dit<B: Backend> {
                #[framer(student)]
                #[cfg(feature = "x")]
                blocks: Vec<Block<B>>,
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn derive_vec_of_students_with_readout_method() {
    insta::assert_snapshot!(derive(dit()));
}

#[test]
fn derive_generated_heads_and_tuple_element() {
    insta::assert_snapshot!(derive(unet()));
}

#[test]
fn derive_array_indices_teacher_and_generics() {
    insta::assert_snapshot!(derive(stack()));
}

#[test]
fn forward_attribute_keeps_the_impl_and_calls_the_bridge() {
    let out = crate::forward::expand_attribute(
        TokenStream::new(),
        quote! {
            impl<B: Backend> Dit<B> {
                pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> { self.proj_out.forward(x) }
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn forward_loop_over_vec_with_readout_arguments() {
    insta::assert_snapshot!(forward(
        dit(),
        quote! {
            impl<B: Backend> Dit<B> {
                pub fn forward(&self, x: Tensor<B, 4>, t: Tensor<B, 1>) -> Tensor<B, 4> {
                    let [_, _, height, width] = x.dims();
                    let temb = self.time_embed.forward(t);
                    let mut hidden = self.patch_embed.forward(x);
                    let mut context = self.context.val();
                    for block in &self.transformer_blocks {
                        (context, hidden) = block.forward(context, hidden, temb.clone());
                    }
                    self.early_exit(hidden, temb, height, width)
                }
            }
        }
    ));
}

#[test]
fn forward_enumerate_index_and_single_field_with_heads() {
    insta::assert_snapshot!(forward(
        unet(),
        quote! {
            impl<B: Backend> UNet<B> {
                pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
                    let mut h = self.conv_in.forward(x);
                    let mut skips = Vec::new();
                    for (i, block) in self.down_blocks.iter().enumerate() {
                        let (next, skip) = block.forward(h);
                        skips.push(skip);
                        h = next;
                    }
                    h = self.mid_block.forward(h);
                    for i in 0..self.up_blocks.len() {
                        h = self.up_blocks[i].forward(h, skips.pop().unwrap());
                    }
                    self.conv_out.forward(h)
                }
            }
        }
    ));
}

#[test]
fn forward_indices_and_teacher_field() {
    insta::assert_snapshot!(forward(
        stack(),
        quote! {
            impl<B: Backend, const N: usize> Stack<B, N> where Layer<B>: Debug {
                pub fn forward(&self, mut x: Tensor<B, 4>) -> (Tensor<B, 4>, usize) {
                    for layer in self.layers.iter() {
                        x = layer.forward(x);
                    }
                    (self.last.forward(x), N)
                }
            }
        }
    ));
}

#[test]
fn errors_are_accumulated_next_to_a_stub() {
    let out = crate::derive::expand(quote! {
        #[framer(__container(readuot = x, heads = conv3x3))]
        pub struct Broken<B: Backend> {
            #[framer(studnet)]
            a: Block<B>,
            #[framer(student, student)]
            b: Vec<Block<B>>,
            #[framer(student)]
            c: Tensor<B, 4>,
        }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn struct_attribute_without_arguments() {
    let out = crate::structure::expand(
        TokenStream::new(),
        quote! {
            #[derive(Module, Debug)]
            pub struct Net<B: Backend> {
                #[framer(student)]
                blocks: Vec<Block<B>>,
                #[module(skip)]
                scale: f32,
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn forward_readout_without_arguments_and_nested_loops() {
    insta::assert_snapshot!(forward(
        quote! {
            #[framer(__container(readout = to_image))]
            pub struct Net<B: Backend> {
                #[framer(student)]
                stages: Vec<Stage<B>>,
                #[framer(student, indices = [1])]
                extra: Vec<Block<B>>,
            }
        },
        quote! {
            impl<B: Backend> Net<B> {
                pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
                    let mut h = x;
                    for stage in &self.stages {
                        for block in &self.extra {
                            h = block.forward(h);
                        }
                        h = stage.forward(h);
                    }
                    self.to_image(h)
                }
            }
        }
    ));
}

#[test]
fn forward_after_a_broken_struct_is_a_stub() {
    let item = quote! {
        impl<B: Backend> Broken<B> {
            pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> { x }
        }
    };
    insta::assert_snapshot!(pretty(crate::forward::expand_bridge(quote!(stub #item))));
}

fn naf() -> TokenStream {
    quote! {
        #[framer(__container(heads = conv1x1))]
        pub struct Naf<B: Backend> {
            intro: Conv2d<B>,
            #[framer(student)]
            encoders: Vec<Block<B>>,
            downs: Vec<Conv2d<B>>,
            #[framer(student)]
            middle: Block<B>,
            #[framer(student, indices = [1])]
            decoders: Vec<Block<B>>,
            ups: Vec<Up<B>>,
        }
    }
}

#[test]
fn forward_zip_chain_enumerates_each_student_source() {
    insta::assert_snapshot!(forward(
        naf(),
        quote! {
            impl<B: Backend> Naf<B> {
                pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
                    let mut h = self.intro.forward(x);
                    let mut skips = Vec::new();
                    for (encoder, down) in self.encoders.iter().zip(&self.downs) {
                        h = encoder.forward(h);
                        skips.push(h.clone());
                        h = down.forward(h);
                    }
                    h = self.middle.forward(h);
                    for ((decoder, up), skip) in self
                        .decoders
                        .iter()
                        .zip(&self.ups)
                        .zip(skips.into_iter().rev())
                    {
                        h = decoder.forward(up.forward(h) + skip);
                    }
                    h
                }
            }
        }
    ));
}

#[test]
fn forward_chain_of_two_collections_carries_the_field_name() {
    insta::assert_snapshot!(forward(
        naf(),
        quote! {
            impl<B: Backend> Naf<B> {
                pub fn forward(&self, mut h: Tensor<B, 4>) -> Tensor<B, 4> {
                    h = self.middle.forward(h);
                    for (i, block) in self.encoders.iter().rev().chain(&self.decoders).enumerate().skip(1) {
                        h = block.forward(h);
                    }
                    h
                }
            }
        }
    ));
}

#[test]
fn forward_follows_helper_methods_of_the_block() {
    insta::assert_snapshot!(forward(
        naf(),
        quote! {
            impl<B: Backend> Naf<B> {
                pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
                    let (h, skips) = self.encode(self.intro.forward(x));
                    let h = self.middle.forward(h);
                    self.decode(h, skips)
                }

                fn encode(&self, mut h: Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
                    let mut skips = Vec::new();
                    for (encoder, down) in self.encoders.iter().zip(&self.downs) {
                        h = encoder.forward(h);
                        skips.push(h.clone());
                        h = down.forward(h);
                    }
                    (h, skips)
                }

                fn decode(&self, mut h: Tensor<B, 4>, mut skips: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
                    for i in 0..self.decoders.len() {
                        h = self.decode_level(i, h, skips.pop().unwrap());
                    }
                    h
                }

                fn decode_level(&self, i: usize, h: Tensor<B, 4>, skip: Tensor<B, 4>) -> Tensor<B, 4> {
                    self.decoders[i].forward(self.ups[i].forward(h) + skip)
                }

                /// Not a student path: left as written, no tapped copy.
                pub fn levels(&self) -> usize {
                    self.encoders.len()
                }
            }
        }
    ));
}

#[test]
fn struct_attribute_without_the_module_derive_is_an_error() {
    let out = crate::structure::expand(
        TokenStream::new(),
        quote! {
            #[derive(Debug)]
            pub struct Net<B: Backend> {
                #[framer(student)]
                blocks: Vec<Block<B>>,
            }
        },
    );
    insta::assert_snapshot!(pretty(out));
}
